package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/tunnel"
)

// headerFlags collects repeated -H 'Name: value' flags.
type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

// clientFlags are the flags every client command takes (DESIGN.md).
type clientFlags struct {
	token     string
	tokenFile string
	headers   headerFlags
	ca        string
	pin       string
	proxy     string
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.token, "token", "", "the credential `TOKEN` (else -token-file or $FERRY_TOKEN)")
	fs.StringVar(&f.tokenFile, "token-file", "", "read the credential from `FILE`")
	fs.Var(&f.headers, "H", "extra handshake header `'Name: value'` (repeatable, for auth proxies)")
	fs.StringVar(&f.ca, "ca", "", "trust the PEM certificates in `FILE` for wss://")
	fs.StringVar(&f.pin, "pin", "", "accept only a server certificate with this SHA-256 `FINGERPRINT` (hex)")
	fs.StringVar(&f.proxy, "proxy", "", "HTTP CONNECT proxy `URL` (default: $HTTPS_PROXY, $NO_PROXY)")
}

// options turns the flags into client options.
func (f *clientFlags) options(tunnelURL string) (*client.Options, error) {
	opts := &client.Options{Header: http.Header{}}
	switch {
	case f.token != "":
		opts.Token = f.token
	case f.tokenFile != "":
		tok, err := readTokenFile(f.tokenFile)
		if err != nil {
			return nil, err
		}
		opts.Token = tok
	default:
		opts.Token = os.Getenv("FERRY_TOKEN")
	}
	for _, h := range f.headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("-H %q: want 'Name: value'", h)
		}
		http.Header(opts.Header).Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	if f.ca != "" || f.pin != "" {
		cfg := &tls.Config{}
		if f.ca != "" {
			pem, err := os.ReadFile(f.ca)
			if err != nil {
				return nil, fmt.Errorf("-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("-ca: no PEM certificate in %s", f.ca)
			}
			cfg.RootCAs = pool
		}
		if f.pin != "" {
			pinned, err := client.PinnedTLS(f.pin)
			if err != nil {
				return nil, fmt.Errorf("-pin: %w", err)
			}
			cfg.InsecureSkipVerify = pinned.InsecureSkipVerify
			cfg.VerifyConnection = pinned.VerifyConnection
		}
		opts.Native.TLSConfig = cfg
	}
	if f.proxy != "" {
		u, err := url.Parse(f.proxy)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("-proxy %q: not a URL like http://proxy:3128", f.proxy)
		}
		opts.Native.Proxy = http.ProxyURL(u)
	}
	return opts, nil
}

// describe turns a connection or open error into one line for a person.
func describe(url string, err error) string {
	var re *client.RefusedError
	var oe *tunnel.OpenError
	switch {
	case errors.As(err, &oe):
		return fmt.Sprintf("the gateway refused %s: %s", oe.Service, strings.TrimPrefix(oe.Error(), "tunnel: open "+oe.Service+": "))
	case errors.As(err, &re):
		return fmt.Sprintf("the gateway at %s refused the tunnel: %v", url, err)
	default:
		return fmt.Sprintf("cannot reach the gateway at %s: %v", url, err)
	}
}

// parseClientFlags parses a client command's flags and checks the number
// of arguments left with nargsOK, printing usage on any problem.
func parseClientFlags(cmd string, args []string, stderr io.Writer, nargsOK func(int) bool, usage string) (*flag.FlagSet, *clientFlags, bool) {
	fs := flag.NewFlagSet("ferry "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := &clientFlags{}
	cf.register(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, false
	}
	if !nargsOK(fs.NArg()) {
		fs.Usage()
		return nil, nil, false
	}
	return fs, cf, true
}

func runForward(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, cf, ok := parseClientFlags("forward", args, stderr, func(n int) bool { return n >= 2 },
		"Usage: ferry forward [client flags] TUNNEL_URL LISTEN=SERVICE...\n\nForwards each local LISTEN address (host:port, or a bare port on 127.0.0.1) to SERVICE\nthrough the gateway, like ssh -L.\n")
	if !ok {
		return 2
	}
	tunnelURL := fs.Arg(0)
	type fwd struct{ listen, service string }
	var fwds []fwd
	for _, a := range fs.Args()[1:] {
		l, svc, ok := strings.Cut(a, "=")
		if !ok || l == "" || svc == "" {
			fmt.Fprintf(stderr, "ferry forward: %q: want LISTEN=SERVICE, e.g. 6379=redis\n", a)
			return 2
		}
		if !strings.Contains(l, ":") {
			l = net.JoinHostPort("127.0.0.1", l)
		}
		fwds = append(fwds, fwd{l, svc})
	}
	opts, err := cf.options(tunnelURL)
	if err != nil {
		fmt.Fprintln(stderr, "ferry forward:", err)
		return 2
	}
	ctx, giveUp := context.WithCancel(ctx)
	defer giveUp()
	var refused atomic.Bool
	opts.OnStatus = func(st client.Status) {
		switch st.State {
		case client.Reconnecting:
			// The gateway's close code and reason, when it sent one:
			// "the gateway closed the tunnel: the gateway is shutting
			// down (1001); reconnecting".
			fmt.Fprintf(stderr, "ferry forward: %s; reconnecting\n", strings.TrimPrefix(fmt.Sprint(st.Err), "client: "))
		case client.Connected:
			fmt.Fprintf(stderr, "ferry forward: tunnel up to %s\n", tunnelURL)
		case client.Closed:
			if st.Err != nil {
				// The credential was refused for good: stop.
				fmt.Fprintf(stderr, "ferry forward: %s; giving up\n", describe(tunnelURL, st.Err))
				refused.Store(true)
				giveUp()
			}
		}
	}
	sess, err := client.Connect(ctx, tunnelURL, opts)
	if err != nil {
		fmt.Fprintln(stderr, "ferry forward:", describe(tunnelURL, err))
		return 1
	}
	defer sess.Close()
	var lns []net.Listener
	for _, f := range fwds {
		ln, err := net.Listen("tcp", f.listen)
		if err != nil {
			fmt.Fprintln(stderr, "ferry forward:", err)
			for _, l := range lns {
				l.Close()
			}
			return 1
		}
		lns = append(lns, ln)
	}
	errc := make(chan error, len(fwds))
	for i, f := range fwds {
		fmt.Fprintf(stdout, "forwarding %s -> %s\n", lns[i].Addr(), f.service)
		go func() {
			errc <- sess.Forward(ctx, lns[i], f.service, func(err error) {
				fmt.Fprintln(stderr, "ferry forward:", describe(tunnelURL, err))
			})
		}()
	}
	err = <-errc
	if refused.Load() {
		return 1
	}
	if ctx.Err() != nil {
		return 0
	}
	fmt.Fprintln(stderr, "ferry forward:", err)
	return 1
}

func runConnect(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs, cf, ok := parseClientFlags("connect", args, stderr, func(n int) bool { return n == 2 },
		"Usage: ferry connect [client flags] TUNNEL_URL SERVICE\n\nPipes standard input and output to one stream to SERVICE, e.g.\n  ssh -o ProxyCommand='ferry connect wss://gw.example.com/tunnel ssh' host\n")
	if !ok {
		return 2
	}
	tunnelURL, service := fs.Arg(0), fs.Arg(1)
	opts, err := cf.options(tunnelURL)
	if err != nil {
		fmt.Fprintln(stderr, "ferry connect:", err)
		return 2
	}
	sess, err := client.Connect(ctx, tunnelURL, opts)
	if err != nil {
		fmt.Fprintln(stderr, "ferry connect:", describe(tunnelURL, err))
		return 1
	}
	defer sess.Close()
	c, err := sess.Dial(ctx, service)
	if err != nil {
		fmt.Fprintln(stderr, "ferry connect:", describe(tunnelURL, err))
		return 1
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(c, stdin)
		c.CloseWrite()
		done <- err
	}()
	_, err = io.Copy(stdout, c)
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(stderr, "ferry connect:", err)
		return 1
	}
	return 0
}
