// containerd 2's snapshotter conformance harness. Requirements other than the local package are
// deliberately absent: the containerd/v2 version comes from integration/go-modules.env, and
// build-go-modules.sh builds one binary per version from a generated copy of this file (-modfile)
// tidied against that version.
module clip-snapshotter/integration/conformance2

go 1.26.6

require clip-snapshotter/integration/snapshotterd v0.0.0

replace clip-snapshotter/integration/snapshotterd => ../snapshotterd
