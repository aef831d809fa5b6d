// The transfer-service pull nerdctl >= 2.3 does, as a small client. Requirements are deliberately
// absent: build-go-modules.sh builds it against each containerd/v2 version of
// integration/go-modules.env from a generated copy of this file (-modfile).
module clip-snapshotter/integration/transferpull

go 1.26.6
