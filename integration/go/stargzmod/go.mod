// The current stargz-snapshotter release's snapshotter served over gRPC, for `make bench`.
// Requirements other than the two local packages are deliberately absent: build-go-modules.sh
// builds it against the stargz-snapshotter version of integration/go-modules.env from a generated
// copy of this file (-modfile), tidied against that version's own requirements.
module clip-snapshotter/integration/stargzmod

go 1.26.6

require (
	clip-snapshotter/integration/proxyserve v0.0.0
	clip-snapshotter/integration/stargzpeer v0.0.0
)

replace (
	clip-snapshotter/integration/proxyserve => ../proxyserve
	clip-snapshotter/integration/stargzpeer => ../stargzpeer
)
