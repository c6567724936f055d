//go:build !js

package tunnel

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/ferrygw/ferry/compress"
)

// DialOptions configures Dial. The zero value (or nil) dials directly or
// through the proxy the environment names, with the system's roots for TLS.
type DialOptions struct {
	// HTTPHeader holds extra request headers (Authorization, cookies...).
	HTTPHeader http.Header
	// Subprotocols are offered in order.
	Subprotocols []string
	// TLSConfig is used for wss:// (cloned; ServerName defaults to the
	// URL's host).
	TLSConfig *tls.Config
	// Proxy picks the HTTP CONNECT proxy for a request; nil means
	// http.ProxyFromEnvironment (HTTPS_PROXY for wss, HTTP_PROXY for ws,
	// NO_PROXY; loopback targets are never proxied). A func returning a nil
	// URL dials directly. User info in the proxy URL is sent as Basic auth.
	Proxy func(*http.Request) (*url.URL, error)
	// NetDial dials TCP (default: a net.Dialer).
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// ReadLimit is the largest message accepted (default DefaultReadLimit).
	ReadLimit int64
	// Compression, when set, offers permessage-deflate (RFC 7692); nil
	// offers nothing.
	Compression *compress.Options
	// Phase, when set, is called on the dialing goroutine as each step of
	// the dial begins: "TCP connect", "proxy CONNECT" (TLS to an https://
	// proxy included), "TLS" and "HTTP upgrade", skipping those that do
	// not apply; a caller can bound each step with a timer of its own.
	Phase func(step string)

	// rawOffer replaces the offer made for Compression (tests only).
	rawOffer string
}

func (o *DialOptions) phase(step string) {
	if o.Phase != nil {
		o.Phase(step)
	}
}

// Dial opens a WebSocket to a ws:// or wss:// URL (RFC 6455 section 4.1).
// ctx bounds the whole opening handshake. When the server answers with
// something other than 101, the response (body read up to 1 KiB) is
// returned with the error.
func Dial(ctx context.Context, rawURL string, opts *DialOptions) (*Conn, *http.Response, error) {
	if opts == nil {
		opts = &DialOptions{}
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("tunnel: dial: %w", err)
	}
	var secure bool
	switch u.Scheme {
	case "ws":
	case "wss":
		secure = true
	default:
		return nil, nil, fmt.Errorf("tunnel: dial %s: scheme must be ws or wss", rawURL)
	}
	if u.Host == "" {
		return nil, nil, fmt.Errorf("tunnel: dial %s: no host", rawURL)
	}
	hostPort := u.Host
	if u.Port() == "" {
		if secure {
			hostPort = net.JoinHostPort(u.Hostname(), "443")
		} else {
			hostPort = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	nc, err := dialTCP(ctx, u, hostPort, secure, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("tunnel: dial %s: %w", rawURL, err)
	}
	opts.phase("HTTP upgrade")
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(aLongTimeAgo) })
	c, resp, err := handshake(nc, u, hostPort, secure, opts)
	if !stop() {
		nc.Close()
		return nil, resp, fmt.Errorf("tunnel: dial %s: %w", rawURL, ctx.Err())
	}
	if err != nil {
		nc.Close()
		return nil, resp, fmt.Errorf("tunnel: dial %s: %w", rawURL, err)
	}
	return c, resp, nil
}

// dialTCP connects to the server, through a CONNECT proxy when one applies,
// and runs TLS for wss.
func dialTCP(ctx context.Context, u *url.URL, hostPort string, secure bool, opts *DialOptions) (net.Conn, error) {
	netDial := opts.NetDial
	if netDial == nil {
		var d net.Dialer
		netDial = d.DialContext
	}
	proxyFn := opts.Proxy
	if proxyFn == nil {
		proxyFn = http.ProxyFromEnvironment
	}
	// The proxy choice looks at an http(s) URL, as net/http would.
	pu := *u
	pu.Scheme = "http"
	if secure {
		pu.Scheme = "https"
	}
	proxyURL, err := proxyFn(&http.Request{URL: &pu, Header: http.Header{}})
	if err != nil {
		return nil, fmt.Errorf("choose proxy: %w", err)
	}
	var nc net.Conn
	if proxyURL != nil {
		nc, err = dialProxy(ctx, proxyURL, hostPort, netDial, opts)
	} else {
		opts.phase("TCP connect")
		nc, err = netDial(ctx, "tcp", hostPort)
	}
	if err != nil {
		return nil, err
	}
	if !secure {
		return nc, nil
	}
	cfg := &tls.Config{}
	if opts.TLSConfig != nil {
		cfg = opts.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	cfg.NextProtos = []string{"http/1.1"}
	opts.phase("TLS")
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("tls: %w", err)
	}
	return tc, nil
}

// dialProxy opens a tunnel to hostPort through an HTTP CONNECT proxy.
func dialProxy(ctx context.Context, proxyURL *url.URL, hostPort string, netDial func(context.Context, string, string) (net.Conn, error), opts *DialOptions) (net.Conn, error) {
	paddr := proxyURL.Host
	if proxyURL.Port() == "" {
		port := "80"
		if proxyURL.Scheme == "https" {
			port = "443"
		}
		paddr = net.JoinHostPort(proxyURL.Hostname(), port)
	}
	opts.phase("TCP connect")
	nc, err := netDial(ctx, "tcp", paddr)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", paddr, err)
	}
	opts.phase("proxy CONNECT")
	switch proxyURL.Scheme {
	case "http", "":
	case "https":
		tc := tls.Client(nc, &tls.Config{ServerName: proxyURL.Hostname()})
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("proxy %s: tls: %w", paddr, err)
		}
		nc = tc
	default:
		nc.Close()
		return nil, fmt.Errorf("proxy %s: scheme %q is not supported (use http or https)", proxyURL.Redacted(), proxyURL.Scheme)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(aLongTimeAgo) })
	defer stop()
	var b strings.Builder
	fmt.Fprintf(&b, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", hostPort, hostPort)
	if user := proxyURL.User; user != nil {
		pass, _ := user.Password()
		cred := base64.StdEncoding.EncodeToString([]byte(user.Username() + ":" + pass))
		fmt.Fprintf(&b, "Proxy-Authorization: Basic %s\r\n", cred)
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(nc, b.String()); err != nil {
		nc.Close()
		return nil, fmt.Errorf("proxy %s: %w", paddr, err)
	}
	// A CONNECT reply has no body and the server behind the proxy speaks
	// only after we do, so nothing may be buffered past the reply.
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("proxy %s: read CONNECT reply: %w", paddr, err)
	}
	if resp.StatusCode != http.StatusOK {
		nc.Close()
		return nil, fmt.Errorf("proxy %s refused CONNECT %s: %s", paddr, hostPort, resp.Status)
	}
	if br.Buffered() > 0 {
		nc.Close()
		return nil, fmt.Errorf("proxy %s: unexpected bytes after the CONNECT reply", paddr)
	}
	return nc, nil
}

// handshake sends the opening handshake and checks the server's answer.
func handshake(nc net.Conn, u *url.URL, hostPort string, secure bool, opts *DialOptions) (*Conn, *http.Response, error) {
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	key := base64.StdEncoding.EncodeToString(raw[:])

	path := u.RequestURI()
	host := u.Host
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", path, host, key)
	if len(opts.Subprotocols) > 0 {
		fmt.Fprintf(&b, "Sec-WebSocket-Protocol: %s\r\n", strings.Join(opts.Subprotocols, ", "))
	}
	if opts.Compression != nil {
		offer := compress.Offer(*opts.Compression)
		if opts.rawOffer != "" {
			offer = opts.rawOffer
		}
		fmt.Fprintf(&b, "Sec-WebSocket-Extensions: %s\r\n", offer)
	}
	for k, vs := range opts.HTTPHeader {
		switch http.CanonicalHeaderKey(k) {
		case "Host", "Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Protocol", "Sec-Websocket-Extensions":
			return nil, nil, fmt.Errorf("header %s is set by the handshake itself", k)
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") || strings.ContainsAny(k, "\r\n: ") {
				return nil, nil, fmt.Errorf("header %q has an invalid name or value", k)
			}
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(nc, b.String()); err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(nc, 4096)
	req := &http.Request{Method: http.MethodGet, URL: u}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, nil, fmt.Errorf("read handshake response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		resp.Body = io.NopCloser(strings.NewReader(string(body)))
		msg := strings.TrimSpace(string(body))
		if msg == "" {
			return nil, resp, fmt.Errorf("server answered %s, not 101", resp.Status)
		}
		return nil, resp, fmt.Errorf("server answered %s, not 101: %s", resp.Status, msg)
	}
	if !headerHasToken(resp.Header, "Upgrade", "websocket") {
		return nil, resp, fmt.Errorf("101 response without Upgrade: websocket")
	}
	if !headerHasToken(resp.Header, "Connection", "upgrade") {
		return nil, resp, fmt.Errorf("101 response without Connection: upgrade")
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), acceptKey(key); got != want {
		return nil, resp, fmt.Errorf("101 response has Sec-WebSocket-Accept %q, want %q", got, want)
	}
	subprotocol := ""
	if ps := resp.Header.Values("Sec-WebSocket-Protocol"); len(ps) > 0 {
		subprotocol = strings.TrimSpace(ps[0])
		ok := len(ps) == 1
		if ok {
			ok = false
			for _, p := range opts.Subprotocols {
				if p == subprotocol {
					ok = true
				}
			}
		}
		if !ok {
			return nil, resp, fmt.Errorf("server selected subprotocol %q, which was not offered", strings.Join(ps, ", "))
		}
	}
	ext := resp.Header.Values("Sec-WebSocket-Extensions")
	if len(ext) > 0 && opts.Compression == nil {
		return nil, resp, fmt.Errorf("server accepted extensions %q that were not offered", strings.Join(ext, ", "))
	}
	c := newConn(nc, br, true, subprotocol, opts.ReadLimit)
	if opts.Compression != nil {
		params, ok, err := compress.Accepted(ext, *opts.Compression)
		if err != nil {
			return nil, resp, err
		}
		if ok {
			c.enableCompression(params, *opts.Compression)
		}
	}
	return c, resp, nil
}
