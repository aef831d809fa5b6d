// SOCI (awslabs/soci-snapshotter) served over gRPC, with its index conversion and its lazy pull,
// for `make bench`. Requirements other than the local package are deliberately absent:
// build-go-modules.sh builds it against the soci-snapshotter version of integration/go-modules.env
// from a generated copy of this file (-modfile), tidied against that version's own requirements.
module clip-snapshotter/integration/socimod

go 1.26.6

require clip-snapshotter/integration/proxyserve v0.0.0

replace clip-snapshotter/integration/proxyserve => ../proxyserve
