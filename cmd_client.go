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
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/clientconfig"
	"github.com/ferrygw/ferry/gateway/config"
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
	timeout   time.Duration
	wait      time.Duration
	once      bool
	config    string // forward only
	check     bool   // forward only
}

// loadProfile reads a client config and selects a profile of it.
func loadProfile(file, profile string) (*clientconfig.Profile, error) {
	f, err := clientconfig.Load(file)
	if err != nil {
		return nil, err
	}
	return f.Select(profile)
}

// profile reads -config FILE and selects the PROFILE argument, if any,
// and sets the flags the command line did not give from it; false means
// exit 2, with the reason written.
func (f *clientFlags) profile(cmd string, fs *flag.FlagSet, stderr io.Writer) (*clientconfig.Profile, bool) {
	if fs.NArg() > 1 {
		fmt.Fprintf(stderr, "%s: with -config, the only argument is a PROFILE; unexpected %q\n", cmd, fs.Arg(1))
		return nil, false
	}
	p, err := loadProfile(f.config, fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, false
	}
	f.fillFrom(fs, p)
	return p, true
}

// fillFrom sets the flags the command line did not give from p.
func (f *clientFlags) fillFrom(fs *flag.FlagSet, p *clientconfig.Profile) {
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	set := func(name string, dst *string, v string) {
		if !given[name] && v != "" {
			*dst = v
		}
	}
	if !given["token"] && !given["token-file"] {
		set("token", &f.token, p.Token)
		set("token-file", &f.tokenFile, p.TokenFile)
	}
	set("ca", &f.ca, p.CA)
	set("pin", &f.pin, p.Pin)
	set("proxy", &f.proxy, p.Proxy)
	if !given["H"] {
		f.headers = append(f.headers, p.Headers...)
	}
	if !given["timeout"] && p.Timeout > 0 {
		f.timeout = p.Timeout
	}
	if !given["wait"] && p.Wait > 0 {
		f.wait = p.Wait
	}
	if !given["once"] && p.Once {
		f.once = true
	}
}

const clientFlagsHelp = `The credential comes from -token, else -token-file, else $FERRY_TOKEN.
Without -proxy, the proxy comes from the environment as curl and Go's
net/http take it: $HTTP_PROXY for ws:// URLs, $HTTPS_PROXY for wss:// URLs,
never for the hosts in $NO_PROXY (nor for loopback addresses).
`

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.token, "token", "", "the credential `TOKEN` (else -token-file or $FERRY_TOKEN)")
	fs.StringVar(&f.tokenFile, "token-file", "", "read the credential from `FILE`, which holds only the token (as `ferry token new > FILE` writes it)")
	fs.Var(&f.headers, "H", "extra handshake header `'Name: value'` (repeatable, for auth proxies)")
	fs.StringVar(&f.ca, "ca", "", "trust the PEM certificates in `FILE` for wss://")
	fs.StringVar(&f.pin, "pin", "", "accept only a wss:// server certificate with this SHA-256 `FINGERPRINT` (hex, as `ferry serve -self-signed` prints)")
	fs.StringVar(&f.proxy, "proxy", "", "HTTP CONNECT proxy `URL`, http:// or https:// (default: $HTTP_PROXY for ws://, $HTTPS_PROXY for wss://, except $NO_PROXY)")
	fs.DurationVar(&f.timeout, "timeout", client.DefaultTimeout, "bound each phase of connecting (TCP connect, proxy CONNECT, TLS, HTTP upgrade, first round trip) by `D`")
	fs.DurationVar(&f.wait, "wait", 30*time.Second, "a local connection waits at most `D` for a tunnel, then is closed")
	fs.BoolVar(&f.once, "once", false, "exit on the first failure to connect, rather than retrying with backoff")
}

// checkTunnelURL checks a TUNNEL_URL argument before anything is dialed.
func checkTunnelURL(raw string) (*url.URL, error) {
	u, err := clientconfig.CheckGateway(raw)
	if err != nil {
		return nil, fmt.Errorf("TUNNEL_URL %v", err)
	}
	return u, nil
}

// options checks the flags against the tunnel URL and turns them into
// client options.
func (f *clientFlags) options(tunnelURL string) (*client.Options, error) {
	u, err := checkTunnelURL(tunnelURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "ws" {
		for _, fl := range []struct{ name, v string }{{"-pin", f.pin}, {"-ca", f.ca}} {
			if fl.v != "" {
				return nil, fmt.Errorf("%s with a ws:// URL: a plaintext tunnel has no certificate to check; use wss://", fl.name)
			}
		}
	}
	switch {
	case f.timeout <= 0:
		return nil, fmt.Errorf("-timeout %s: want a positive duration", f.timeout)
	case f.wait <= 0:
		return nil, fmt.Errorf("-wait %s: want a positive duration", f.wait)
	}
	opts := &client.Options{Header: http.Header{}, Timeout: f.timeout, Wait: f.wait, RetryAtStart: !f.once}
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
		pu, err := url.Parse(f.proxy)
		if err != nil || pu.Host == "" || (pu.Scheme != "http" && pu.Scheme != "https") {
			return nil, fmt.Errorf("-proxy %q: want an http:// or https:// URL, like http://proxy:3128", f.proxy)
		}
		opts.Native.Proxy = http.ProxyURL(pu)
	}
	return opts, nil
}

// reason turns an error of the client into words for a person, without
// the package prefixes (and the URL, which the line already names).
func reason(url string, err error) string {
	var te *client.TunnelClosedError
	if errors.As(err, &te) && te.Remote && te.Reason == "" && te.Code == uint16(tunnel.StatusGoingAway) {
		return "the gateway is going away (1001)"
	}
	s := strings.TrimPrefix(err.Error(), "client: ")
	s = strings.TrimPrefix(s, "tunnel: dial "+url+": ")
	return strings.TrimPrefix(s, "tunnel: ")
}

// describe turns a connection or open error into one line for a person.
func describe(url string, err error) string {
	var re *client.RefusedError
	var oe *tunnel.OpenError
	var ce *client.CertificateError
	var nt *client.NoTunnelError
	switch {
	case errors.As(err, &oe):
		return fmt.Sprintf("the gateway refused %s: %s", oe.Service, strings.TrimPrefix(oe.Error(), "tunnel: open "+oe.Service+": "))
	case errors.As(err, &ce):
		// Said once, with what to do about it; the wrapping of the
		// layers below adds nothing.
		var pe *client.PinMismatchError
		if errors.As(err, &pe) {
			return fmt.Sprintf("the certificate of the gateway at %s is not trusted: %v (if the gateway's certificate changed on purpose, give -pin %s)", url, pe, pe.Got)
		}
		return fmt.Sprintf("the certificate of the gateway at %s is not trusted: %v; give -ca FILE with the certificate of its authority, or -pin with the SHA-256 fingerprint that `ferry serve -self-signed` prints", url, ce.Err)
	case errors.As(err, &re):
		return fmt.Sprintf("the gateway at %s refused the tunnel: %v", url, reason(url, err))
	case errors.As(err, &nt):
		if nt.Last != nil {
			return fmt.Sprintf("no tunnel to %s in time; the last try: %s", url, describeAttempt(url, nt.Last))
		}
		return fmt.Sprintf("no tunnel to %s in time", url)
	default:
		return fmt.Sprintf("cannot reach the gateway at %s: %v", url, reason(url, err))
	}
}

// describeAttempt is describe without the address, for an error already
// introduced as the gateway's.
func describeAttempt(url string, err error) string {
	var te *client.TunnelClosedError
	if errors.As(err, &te) {
		return reason(url, err)
	}
	return describe(url, err)
}

// clientCommand is what forward and connect share: their flags, usage
// and arguments.
type clientCommand struct {
	name  string // "forward"
	usage string
	args  []string // the names of the positional arguments, for "missing"
	many  bool     // the last argument repeats

	withConfig bool // -config FILE [PROFILE] and -check

	flags func(fs *flag.FlagSet) // the command's own flags, if any
}

// parse parses the flags; ok false means exit with code.
func (c *clientCommand) parse(args []string, stdout, stderr io.Writer) (fs *flag.FlagSet, cf *clientFlags, code int, ok bool) {
	fs = newFlagSet("ferry " + c.name)
	cf = &clientFlags{}
	cf.register(fs)
	if c.withConfig {
		fs.StringVar(&cf.config, "config", "", "read the gateway, credential and forwards from the client config `FILE` (see client.toml); then the only argument is a PROFILE")
		fs.BoolVar(&cf.check, "check", false, "check the arguments (or -config FILE) and exit, without connecting")
	}
	if c.flags != nil {
		c.flags(fs)
	}
	if code, ok := parseFlags(fs, args, c.fullUsage(), stdout, stderr); !ok {
		return nil, nil, code, false
	}
	return fs, cf, 0, true
}

func (c *clientCommand) fullUsage() string { return c.usage + "\n" + clientFlagsHelp }

// checkArgs checks the count of arguments left after the flags.
func (c *clientCommand) checkArgs(fs *flag.FlagSet, stdout, stderr io.Writer) (int, bool) {
	n := fs.NArg()
	if n < len(c.args) {
		fmt.Fprintf(stderr, "ferry %s: missing %s\n\n", c.name, c.args[n])
		printUsage(fs, c.fullUsage(), stderr)
		return 2, false
	}
	if n > len(c.args) && !c.many {
		fmt.Fprintf(stderr, "ferry %s: unexpected argument %q\n", c.name, fs.Arg(len(c.args)))
		return 2, false
	}
	return 0, true
}

// parseForward checks one LISTEN=SERVICE argument.
func parseForward(a string) (clientconfig.Forward, error) {
	l, svc, ok := strings.Cut(a, "=")
	if !ok || l == "" || svc == "" {
		return clientconfig.Forward{}, fmt.Errorf("%q: want LISTEN=SERVICE, e.g. 6379=redis or 0.0.0.0:6379=redis", a)
	}
	f, err := clientconfig.ParseForward(l, svc)
	if err != nil {
		return f, fmt.Errorf("%q: %v", a, err)
	}
	return f, nil
}

var forwardCommand = clientCommand{
	name: "forward",
	usage: `Usage: ferry forward [client flags] TUNNEL_URL LISTEN=SERVICE...
       ferry forward -config FILE [client flags] [PROFILE]

Forwards each local LISTEN address (host:port, or a bare port on 127.0.0.1;
port 0 picks a free one) to SERVICE through the gateway, like ssh -L. It
listens at once and connects in the background, retrying with backoff (as
autossh does) until the gateway refuses the credential or its certificate
is not the one trusted; -once exits on the first failure instead. A local
connection waits up to -wait for the tunnel. With -config, the gateway,
credential, settings and forwards come from a client config (client.toml
documents every key), from its top level or the named PROFILE; flags given
on the command line win over the file.
`,
	args:       []string{"TUNNEL_URL", "LISTEN=SERVICE"},
	many:       true,
	withConfig: true,
}

func runForward(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const cmd = "ferry forward"
	// Status lines come from the Session's goroutines: one writer
	// serializes them. On a terminal it keeps a live status line.
	var live *liveReporter
	if width, tty := terminalWidth(stderr); tty {
		ll := &liveLine{w: stderr, width: width}
		defer ll.end()
		stderr = ll
		if _, tty := terminalWidth(stdout); tty {
			stdout = ll.above(stdout)
		}
		live = &liveReporter{line: ll}
	} else {
		stderr = &lockedWriter{w: stderr}
	}
	fs, cf, code, ok := forwardCommand.parse(args, stdout, stderr)
	if !ok {
		return code
	}
	var tunnelURL string
	var fwds []clientconfig.Forward
	if cf.config != "" {
		p, ok := cf.profile(cmd, fs, stderr)
		if !ok {
			return 2
		}
		tunnelURL, fwds = p.Gateway, p.Forwards
		if len(fwds) == 0 {
			fmt.Fprintf(stderr, "%s: %s: nothing to forward: add a [forward] table with lines like \"6379\" = \"redis\"\n", cmd, cf.config)
			return 2
		}
	} else {
		if code, ok := forwardCommand.checkArgs(fs, stdout, stderr); !ok {
			return code
		}
		tunnelURL = fs.Arg(0)
		seen := map[string]bool{}
		for _, a := range fs.Args()[1:] {
			f, err := parseForward(a)
			if err != nil {
				fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
				return 2
			}
			if seen[f.Listen] && !strings.HasSuffix(f.Listen, ":0") {
				fmt.Fprintf(stderr, "%s: %s is given twice\n", cmd, f.Listen)
				return 2
			}
			seen[f.Listen] = true
			fwds = append(fwds, f)
		}
	}
	opts, err := cf.options(tunnelURL)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return 2
	}
	if cf.check {
		for _, f := range fwds {
			fmt.Fprintf(stdout, "would forward %s -> %s\n", f.Listen, f.Service)
		}
		fmt.Fprintf(stdout, "%s: ok (gateway %s)\n", cmd, tunnelURL)
		return 0
	}
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for _, f := range fwds {
		ln, err := net.Listen("tcp", f.Listen)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
			return 1
		}
		lns = append(lns, ln)
		if f.Public {
			fmt.Fprintf(stderr, "%s: warning: %s is reachable from the network, not only from this machine\n", cmd, ln.Addr())
		}
	}
	ctx, giveUp := context.WithCancel(ctx)
	defer giveUp()
	rep := newReporter(cmd, tunnelURL, stderr, false)
	rep.once = cf.once
	var failed atomic.Bool
	opts.OnStatus = func(st client.Status) {
		final := false
		if live != nil && !cf.once {
			final = live.status(st, cmd)
		} else {
			final = rep.status(st)
		}
		if final {
			failed.Store(true)
			giveUp()
		}
	}
	if live != nil {
		live.st.url = tunnelURL
		live.line.set(renderLive(live.st, time.Now()))
	}
	opts.OnLimit = func(e *client.SessionLimitError) {
		fmt.Fprintf(stderr, "%s: the gateway refused tunnel %d for more streams: %s; connections past the streams of %d tunnel(s) are refused\n", cmd, e.Tunnels+1, reason(tunnelURL, e.Err), e.Tunnels)
	}
	sess, err := client.Connect(ctx, tunnelURL, opts)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", cmd, describe(tunnelURL, err))
		return 1
	}
	defer sess.Close()
	if live != nil {
		live.mu.Lock()
		live.sess = sess
		live.mu.Unlock()
		stop, ticking := make(chan struct{}), make(chan struct{})
		go func() { live.run(stop); close(ticking) }()
		defer func() { close(stop); <-ticking }()
	}
	errLines := &dedup{w: stderr, every: 10 * time.Second}
	errc := make(chan error, len(fwds))
	for i, f := range fwds {
		ln := lns[i]
		fmt.Fprintf(stdout, "forwarding %s -> %s\n", ln.Addr(), f.Service)
		go func() {
			errc <- sess.Forward(ctx, ln, f.Service, func(err error) {
				var nt *client.NoTunnelError
				if ctx.Err() != nil {
					return // ferry forward is ending
				}
				if errors.As(err, &nt) {
					fmt.Fprintf(stderr, "%s: %s: closed a local connection that waited %s for the tunnel (-wait): %s\n", cmd, ln.Addr(), cf.wait, describe(tunnelURL, err))
					return
				}
				errLines.say(fmt.Sprintf("%s: %s", cmd, describe(tunnelURL, err)))
			})
		}()
	}
	err = <-errc
	if failed.Load() {
		return 1
	}
	if ctx.Err() != nil {
		return 0
	}
	fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
	return 1
}

// movedOn reports whether a Reconnecting status is the gateway asking
// its clients to move (a drain, or a 1001 close), not a failure.
func movedOn(err error) bool {
	var te *client.TunnelClosedError
	return errors.Is(err, client.ErrGatewayDraining) ||
		errors.As(err, &te) && te.Remote && te.Code == uint16(tunnel.StatusGoingAway)
}

var connectCommand = clientCommand{
	name: "connect",
	usage: `Usage: ferry connect [client flags] TUNNEL_URL SERVICE

Pipes standard input and output to one stream to SERVICE, e.g.
  ssh -o ProxyCommand='ferry connect wss://gw.example.com/tunnel ssh' host
It waits up to -wait for a tunnel, retrying with backoff, and says on
standard error only what went wrong.
`,
	args: []string{"TUNNEL_URL", "SERVICE"},
}

func runConnect(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	const cmd = "ferry connect"
	stderr = &lockedWriter{w: stderr} // status lines come from the Session's goroutines
	fs, cf, code, ok := connectCommand.parse(args, stdout, stderr)
	if !ok {
		return code
	}
	if code, ok := connectCommand.checkArgs(fs, stdout, stderr); !ok {
		return code
	}
	tunnelURL, service := fs.Arg(0), fs.Arg(1)
	if !config.ValidServiceName(service) {
		fmt.Fprintf(stderr, "%s: SERVICE %q is not a service name (lowercase letters, digits, . _ -)\n", cmd, service)
		return 2
	}
	opts, err := cf.options(tunnelURL)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return 2
	}
	rep := newReporter(cmd, tunnelURL, stderr, true)
	opts.OnStatus = func(st client.Status) { rep.status(st) }
	sess, err := client.Connect(ctx, tunnelURL, opts)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", cmd, describe(tunnelURL, err))
		return 1
	}
	defer sess.Close()
	dctx, cancel := context.WithTimeout(ctx, cf.wait)
	c, err := sess.Dial(dctx, service)
	cancel()
	if err != nil {
		var nt *client.NoTunnelError
		var p interface{ Permanent() bool }
		switch {
		case errors.As(err, &p) && p.Permanent():
			fmt.Fprintf(stderr, "%s: giving up: %s\n", cmd, describe(tunnelURL, err))
		case errors.As(err, &nt) && ctx.Err() == nil:
			fmt.Fprintf(stderr, "%s: giving up: no tunnel to %s within %s (-wait)\n", cmd, tunnelURL, cf.wait)
		default:
			fmt.Fprintf(stderr, "%s: %s\n", cmd, describe(tunnelURL, err))
		}
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
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return 1
	}
	return 0
}
