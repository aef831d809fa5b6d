// Package snapshotterd runs the snapshotter daemon under test for the
// conformance harnesses, the containerd 1.6 one (integration/go/conformance,
// GOPATH mode, importing "../snapshotterd") and the containerd 2 one
// (integration/go/conformance2, module mode, through a replace directive):
// one process per test on a fresh root, reached over the Snapshots gRPC API
// exactly as containerd reaches a proxy plugin, and stopped with a check that
// it exited cleanly and left nothing mounted.
//
// It imports no containerd package but the Snapshots API (one import path in
// both majors); each harness passes in its own version's testsuite, proxy
// snapshotter and unmount.
package snapshotterd

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/moby/sys/mountinfo"
	"google.golang.org/grpc"
)

const (
	startTimeout = 30 * time.Second // a cold Node start under a parallel suite on 2 cores
	stopTimeout  = 10 * time.Second // SIGTERM grace before SIGKILL
	outputTail   = 4096             // bytes of daemon output quoted in failures
)

// Run runs suite (under name, which selects its per-snapshotter variants)
// against the daemon CLIP_SNAPSHOTTER_CMD names: for every test,
// `$CLIP_SNAPSHOTTER_CMD --root ROOT --address ROOT/s.sock` (run by /bin/sh,
// so it may hold several words) on a fresh root, reached through proxy. Each
// test's closer stops the daemon and fails on an unclean exit or a leaked
// mount, which it detaches with unmount (that version's mount.Unmount).
//
// suite is that version's testsuite.SnapshotterSuite, S its snapshots.Snapshotter
// and F the type of the suite's start function (named in containerd 1.6).
func Run[S any, F ~func(ctx context.Context, root string) (S, func() error, error)](t *testing.T, name string, suite func(*testing.T, string, F), proxy func(snapshotsapi.SnapshotsClient) S, unmount func(target string) error) {
	cmdline := os.Getenv("CLIP_SNAPSHOTTER_CMD")
	if cmdline == "" {
		t.Fatal("CLIP_SNAPSHOTTER_CMD is not set (the snapshotter daemon command)")
	}
	suite(t, name, F(func(ctx context.Context, root string) (S, func() error, error) {
		var none S
		sock := filepath.Join(root, "s.sock")
		d, err := start(cmdline, root, sock)
		if err != nil {
			return none, nil, err
		}
		conn, err := d.dial(ctx, sock)
		if err != nil {
			d.stop(unmount)
			return none, nil, err
		}
		closer := func() error {
			conn.Close()
			return d.stop(unmount)
		}
		return proxy(snapshotsapi.NewSnapshotsClient(conn)), closer, nil
	}))
}

// daemon is one snapshotter process and everything it printed.
type daemon struct {
	cmd     *exec.Cmd
	root    string
	out     *syncBuffer
	done    chan struct{} // closed once the process has been reaped
	waitErr error         // valid after done
}

func start(cmdline, root, sock string) (*daemon, error) {
	// `exec` makes the daemon itself the child, so SIGTERM reaches it and
	// not just a shell.
	cmd := exec.Command("/bin/sh", "-c", "exec "+cmdline+` "$@"`, "sh", "--root", root, "--address", sock)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group, so SIGKILL also reaches any helpers it spawned.
		Setpgid: true,
		// A test binary that panics or times out never runs the closers;
		// this keeps it from leaking daemons that hold mounts.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := spawn(cmd); err != nil {
		return nil, fmt.Errorf("start %q: %w", cmdline, err)
	}
	d := &daemon{cmd: cmd, root: root, out: out, done: make(chan struct{})}
	go func() {
		d.waitErr = cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

// spawnJobs reach the one goroutine that starts every daemon. Pdeathsig fires when the OS
// *thread* that forked the child exits, not the process; containerd 2's suite (its mount manager)
// runs goroutines that end their locked threads, which killed daemons started from them mid-test.
// This goroutine locks its thread for the life of the test binary, so Pdeathsig means what it
// says: the test process died.
var spawnJobs = make(chan spawnJob)

type spawnJob struct {
	cmd  *exec.Cmd
	done chan error
}

func init() {
	go func() {
		runtime.LockOSThread()
		for j := range spawnJobs {
			j.done <- j.cmd.Start()
		}
	}()
}

func spawn(cmd *exec.Cmd) error {
	j := spawnJob{cmd: cmd, done: make(chan error, 1)}
	spawnJobs <- j
	return <-j.done
}

// dial waits for the socket to appear and connects, failing fast if the
// daemon exits first (a bad flag or config would otherwise cost startTimeout).
func (d *daemon) dial(ctx context.Context, sock string) (*grpc.ClientConn, error) {
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-d.done:
			return nil, fmt.Errorf("snapshotter exited before serving (%v):\n%s", d.waitErr, d.out.tail())
		case <-time.After(20 * time.Millisecond):
		}
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no socket at %s after %s:\n%s", sock, startTimeout, d.out.tail())
		}
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	// passthrough: the path reaches the dialer as given, in the old grpc of
	// Debian's GOPATH build and the new one of the module build alike; the
	// authority is the one grpc gives unix targets (a path is not one the
	// Node daemon's HTTP/2 server accepts).
	conn, err := grpc.DialContext(dctx, "passthrough:///"+sock, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithContextDialer(dialUnix), grpc.WithAuthority("localhost"))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w\n%s", sock, err, d.out.tail())
	}
	return conn, nil
}

func dialUnix(ctx context.Context, path string) (net.Conn, error) {
	var nd net.Dialer
	return nd.DialContext(ctx, "unix", path)
}

// stop sends SIGTERM, escalates to SIGKILL after stopTimeout, and returns an
// error unless the daemon exited 0 and left nothing mounted under its root.
func (d *daemon) stop(unmount func(target string) error) error {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	var problems []string
	select {
	case <-d.done:
		if d.waitErr != nil {
			problems = append(problems, fmt.Sprintf("exit after SIGTERM: %v", d.waitErr))
		}
	case <-time.After(stopTimeout):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
		problems = append(problems, fmt.Sprintf("still running %s after SIGTERM; killed", stopTimeout))
	}
	// A mount that outlives the daemon is a leak (a FUSE one is also dead);
	// detach it so the suite can delete the root, but report it.
	if leaked := mountsUnder(d.root); len(leaked) > 0 {
		for _, m := range leaked {
			_ = unmount(m)
		}
		problems = append(problems, fmt.Sprintf("mounts left under root: %s", strings.Join(leaked, ", ")))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s\ndaemon output:\n%s", strings.Join(problems, "; "), d.out.tail())
	}
	return nil
}

// mountsUnder lists mount points below dir, deepest first so they unmount in order.
func mountsUnder(dir string) []string {
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil
	}
	var found []string
	for i := len(infos) - 1; i >= 0; i-- {
		found = append(found, infos[i].Mountpoint)
	}
	return found
}

// syncBuffer collects the daemon's stdout and stderr, which are written from
// two goroutines of os/exec.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) tail() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > outputTail {
		s = "…" + s[len(s)-outputTail:]
	}
	return s
}
