// Package stargzpeer is what the benchmark's two stargz-snapshotter peers share
// that does not depend on the containerd or stargz version each is built
// against: stargzref (GOPATH mode, Debian's 0.12 library and containerd 1.x,
// importing "../stargzpeer") and stargzmod (module mode, the pinned release and
// containerd 2.x, through a replace directive). It owns their common command
// line and how a registry host is reached; each main turns that into its own
// version's docker.RegistryHost. It imports only the standard library and
// retryablehttp, which both builds have.
package stargzpeer

import (
	"flag"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Options are the flags both peers take, shaped like `clip-snapshotter serve`'s
// so a harness starts either peer (or clip) with the same arguments.
type Options struct {
	Root     string
	Address  string
	LogLevel string
	plain    map[string]bool
}

// Flags registers the common flags on the default flag set, with state and
// socket defaults named for the program; call the result after flag.Parse.
func Flags(program string) func() Options {
	root := flag.String("root", "/var/lib/"+program, "snapshotter state directory")
	address := flag.String("address", "/run/"+program+"/"+program+".sock", "unix socket to serve on")
	logLevel := flag.String("log-level", "info", "log level (debug, info, warn, error)")
	plainHTTP := flag.String("plain-http", "", "comma-separated registry host:port list reached over plain HTTP")
	return func() Options {
		plain := map[string]bool{}
		for _, h := range strings.Split(*plainHTTP, ",") {
			if h = strings.TrimSpace(h); h != "" {
				plain[h] = true
			}
		}
		return Options{Root: *root, Address: *address, LogLevel: *logLevel, plain: plain}
	}
}

// Scheme is how host is reached: plain HTTP for a loopback host (local, as
// docker.MatchLocalhost tells) or one listed in -plain-http, https otherwise.
func (o Options) Scheme(host string, local bool) string {
	if local || o.plain[host] {
		return "http"
	}
	return "https"
}

// Client is a new registry client: retryablehttp's, whose retry policy the
// stargz fetcher configures from its own settings (it only does so for that
// transport), with the 30 s request timeout the upstream daemon's resolver
// uses.
func Client() *http.Client {
	rc := retryablehttp.NewClient()
	rc.Logger = nil
	client := rc.StandardClient()
	client.Timeout = 30 * time.Second
	return client
}
