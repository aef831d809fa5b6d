// Read only in module mode, where integration/go/conformance2 requires this package through a
// replace directive; its requirements are resolved in conformance2's generated go.mod. The
// GOPATH-mode build of integration/go/conformance imports it as "../snapshotterd" and ignores this file.
module clip-snapshotter/integration/snapshotterd

go 1.26.6
