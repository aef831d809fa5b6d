// Read only in module mode, where integration/go/stargzmod requires this package through a
// replace directive; its requirements are resolved in stargzmod's generated go.mod. The
// GOPATH-mode builds (overlayref, stargzref) import it as "../proxyserve" and ignore this file.
module clip-snapshotter/integration/proxyserve

go 1.26.6
