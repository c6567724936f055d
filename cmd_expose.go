package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/gateway/config"
)

var exposeCommand = clientCommand{
	name: "expose",
	usage: `Usage: ferry expose [client flags] [-id ID] [-also URL]... TUNNEL_URL SERVICE=LOCALADDR...
       ferry expose -config FILE [client flags] [-id ID] [-also URL]... [PROFILE]

Publishes local TCP services through the gateway, for services behind NAT
or a firewall that only lets HTTPS out, like ssh -R: each SERVICE (with
backend = "expose" in the gateway's config, and a token allowed to expose
it) is served by this process, which connects every stream to LOCALADDR
(host:port, or a bare port on 127.0.0.1) and to nothing else. Several
exposers of one service share its streams; one that registers again with
its -id (after a restart) takes the name back at once. It keeps its
registrations across reconnects, retrying with backoff, until the gateway
refuses the credential; -once exits on the first failure instead. With
-also, it holds a tunnel to each further gateway and registers on each, so
that any of N gateways behind a load balancer can reach it. With -config,
the gateway, credential and the [expose] table (service = local address)
come from a client config (client.toml), its top level or PROFILE.
`,
	args:       []string{"TUNNEL_URL", "SERVICE=LOCALADDR"},
	many:       true,
	withConfig: true,
}

// exposed is one SERVICE=LOCALADDR argument.
type exposed struct{ service, addr string }

// parseExpose checks one SERVICE=LOCALADDR argument.
func parseExpose(a string) (exposed, error) {
	svc, addr, ok := strings.Cut(a, "=")
	if !ok || svc == "" || addr == "" {
		return exposed{}, fmt.Errorf("%q: want SERVICE=LOCALADDR, e.g. laptop-postgres=5432 or laptop-postgres=127.0.0.1:5432", a)
	}
	if !config.ValidServiceName(svc) {
		return exposed{}, fmt.Errorf("%q: %q is not a service name (lowercase letters, digits, . _ -)", a, svc)
	}
	if p, err := strconv.Atoi(addr); err == nil {
		if p < 1 || p > 65535 {
			return exposed{}, fmt.Errorf("%q: port %d is outside 1-65535", a, p)
		}
		addr = net.JoinHostPort("127.0.0.1", addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
		return exposed{}, fmt.Errorf("%q: LOCALADDR %q: want host:port or a port (1-65535)", a, addr)
	}
	return exposed{svc, addr}, nil
}

func runExpose(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const cmd = "ferry expose"
	stderr = &lockedWriter{w: stderr}
	var id string
	var also headerFlags
	c := exposeCommand
	c.flags = func(fs *flag.FlagSet) {
		fs.StringVar(&id, "id", "", "the exposer `ID` the gateway knows this process by (default: from the host name and the service); a registration with the same ID replaces the old one at once")
		fs.Var(&also, "also", "register on the gateway at `URL` too (repeatable): one tunnel to each")
	}
	fs, cf, code, ok := c.parse(args, stdout, stderr)
	if !ok {
		return code
	}
	var tunnelURL string
	var specs []string // SERVICE=LOCALADDR
	if cf.config != "" {
		p, ok := cf.profile(cmd, fs, stderr)
		if !ok {
			return 2
		}
		tunnelURL = p.Gateway
		for _, svc := range slices.Sorted(maps.Keys(p.Expose)) {
			specs = append(specs, svc+"="+p.Expose[svc])
		}
		if len(specs) == 0 {
			fmt.Fprintf(stderr, "%s: %s has no [expose] entries\n", cmd, cf.config)
			return 2
		}
	} else {
		if code, ok := c.checkArgs(fs, stdout, stderr); !ok {
			return code
		}
		tunnelURL, specs = fs.Arg(0), fs.Args()[1:]
	}
	var exps []exposed
	seen := map[string]bool{}
	for _, a := range specs {
		e, err := parseExpose(a)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
			return 2
		}
		if seen[e.service] {
			fmt.Fprintf(stderr, "%s: %s is given twice\n", cmd, e.service)
			return 2
		}
		seen[e.service] = true
		exps = append(exps, e)
	}
	if cf.check {
		for _, e := range exps {
			fmt.Fprintf(stdout, "would expose %s -> %s\n", e.service, e.addr)
		}
		fmt.Fprintf(stdout, "%s: ok (gateway %s)\n", cmd, tunnelURL)
		return 0
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(exps)*(1+len(also)))
	for _, u := range append([]string{tunnelURL}, also...) {
		opts, err := cf.options(u)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
			return 2
		}
		rep := newReporter(cmd, u, stderr, false)
		sess, err := client.Connect(ctx, u, opts)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %s\n", cmd, describe(u, err))
			return 1
		}
		defer sess.Close()
		for _, e := range exps {
			l, err := sess.Expose(ctx, e.service, &client.ExposeOptions{ID: id, OnStatus: func(st client.Status) {
				if rep.status(st) || cf.once && st.State == client.Reconnecting {
					cancel()
				}
			}})
			if err != nil {
				fmt.Fprintf(stderr, "%s: %s: %s\n", cmd, e.service, describe(u, err))
				return 1
			}
			if len(also) == 0 {
				fmt.Fprintf(stdout, "exposing %s -> %s (exposer %s)\n", e.service, e.addr, l.ID())
			} else {
				fmt.Fprintf(stdout, "exposing %s -> %s (exposer %s) on %s\n", e.service, e.addr, l.ID(), u)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				stop := context.AfterFunc(ctx, func() { l.Close() })
				defer stop()
				err := l.ServeTCP(e.addr, 10*time.Second, func(err error) {
					if err != nil && !errors.Is(err, net.ErrClosed) {
						fmt.Fprintf(stderr, "%s: %s: stream: %v\n", cmd, e.service, err)
					}
				})
				if !errors.Is(err, net.ErrClosed) {
					// A refusal retrying cannot lift (replaced, revoked):
					// the process ends with it.
					errc <- fmt.Errorf("%s on %s: %w", e.service, u, err)
					cancel()
				}
			}()
		}
	}
	wg.Wait()
	select {
	case err := <-errc:
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return 1
	default:
	}
	return 0
}
