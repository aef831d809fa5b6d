// Read only in module mode, where integration/go/stargzmod requires this package through a
// replace directive; its requirements are resolved in stargzmod's generated go.mod. The
// GOPATH-mode build of stargzref imports it as "../stargzpeer" and ignores this file.
module clip-snapshotter/integration/stargzpeer

go 1.26.6
