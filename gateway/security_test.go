package gateway_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/compress"
	"github.com/ferrygw/ferry/gateway"
	"github.com/ferrygw/ferry/gateway/config"
	"github.com/ferrygw/ferry/tunnel"
	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/yamux"
)

// openSockets lists this process's open sockets (the runtime's own files,
// such as the netpoller and cgroup files, come and go on their own).
func openSockets(t testing.TB) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	var out []string
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			out = append(out, l)
		}
	}
	return out
}

// noLeaks records the sockets open now and checks, when the test ends,
// that no more are open (the gateway's listener and backends close in
// cleanups that run first). Goroutines are checked for the whole package
// by goleak.
//
// The attack tests that use it are not parallel, so the goroutine count is
// theirs alone: it must come back to where it was too.
func noLeaks(t *testing.T) {
	base := len(openSockets(t))
	baseG := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			now := openSockets(t)
			g := runtime.NumGoroutine()
			if len(now) <= base && g <= baseG {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("after the test: %d sockets (%d before): %v; %d goroutines (%d before)", len(now), base, now, g, baseG)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

const hsSecret = "0123456789abcdef0123456789abcdef-ferry-test-secret"

func signHS(t testing.TB, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startGatewayOpts is startGateway with gateway options.
func startGatewayOpts(t testing.TB, toml string, opts *gateway.Options) *gw {
	t.Helper()
	return startGatewayWith(t, toml, opts, nil)
}

// startGatewayWith is startGatewayOpts serving through listener (to add
// TLS or watch connections) when it is not nil; the gw's ln is the plain
// TCP listener.
func startGatewayWith(t testing.TB, toml string, opts *gateway.Options, listener func(*gateway.Server, net.Listener) net.Listener) *gw {
	t.Helper()
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "test.toml"), []byte(toml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	srv, err := gateway.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serving := ln
	if listener != nil {
		serving = listener(srv, ln)
	}
	done := make(chan struct{})
	go func() { srv.Serve(serving); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return &gw{srv: srv, url: "ws://" + ln.Addr().String() + cfg.Server.TunnelPath, ln: ln, done: done}
}

func jwtConfig(t testing.TB, backend string) string {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte(hsSecret+"\n"), 0o600)
	return fmt.Sprintf(`
[auth]
jwt_secret_file = %q
jwt_audience = "ferry-test"
[limits]
max_sessions_per_ip = 1000
[services.redis]
backend = %q
[services.postgres]
backend = %q
`, secretFile, backend, backend)
}

// TestJWT covers signed tokens: valid, missing, wrong, expired, wrongly
// signed, another audience, no services claim, a service outside the
// token, and expiry for streams opened after the handshake.
func TestJWT(t *testing.T) {
	noLeaks(t)
	backend := echoBackend(t)
	var now atomic.Int64
	now.Store(time.Now().Unix())
	clock := func() time.Time { return time.Unix(now.Load(), 0) }
	g := startGatewayOpts(t, jwtConfig(t, backend), &gateway.Options{Now: clock})
	ctx := context.Background()
	exp := time.Unix(now.Load(), 0).Add(time.Minute).Unix()
	good := signHS(t, hsSecret, jwt.MapClaims{"exp": exp, "aud": "ferry-test", "sub": "user-7", "services": []string{"redis"}})

	_, other, _ := ed25519.GenerateKey(rand.Reader)
	eddsa, _ := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"exp": exp, "aud": "ferry-test", "services": []string{"redis"}}).SignedString(other)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"exp": exp, "aud": "ferry-test", "services": []string{"redis"}}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	refusals := []struct {
		name, token, reason string
	}{
		{"missing", "", "a token is required"},
		{"garbage", "not.a.jwt", "not valid"},
		{"wrong secret", signHS(t, "another-secret-another-secret-another", jwt.MapClaims{"exp": exp, "aud": "ferry-test", "services": []string{"redis"}}), "signature is not valid"},
		{"expired", signHS(t, hsSecret, jwt.MapClaims{"exp": now.Load() - 60, "aud": "ferry-test", "services": []string{"redis"}}), "expired"},
		{"no exp", signHS(t, hsSecret, jwt.MapClaims{"aud": "ferry-test", "services": []string{"redis"}}), "no exp"},
		{"other audience", signHS(t, hsSecret, jwt.MapClaims{"exp": exp, "aud": "someone-else", "services": []string{"redis"}}), "another audience"},
		{"no services claim", signHS(t, hsSecret, jwt.MapClaims{"exp": exp, "aud": "ferry-test"}), "no services claim"},
		{"EdDSA instead of HS256", eddsa, "not valid"},
		{"alg none", none, "not valid"},
	}
	for _, tt := range refusals {
		_, err := client.Connect(ctx, g.url, &client.Options{Token: tt.token})
		var re *client.RefusedError
		if !errors.As(err, &re) || re.Status != http.StatusUnauthorized || !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("%s: %v, want 401 mentioning %q", tt.name, err, tt.reason)
		}
	}

	s := connect(t, g.url, &client.Options{Token: good, MinBackoff: time.Hour})
	c, err := s.Dial(ctx, "redis")
	if err != nil {
		t.Fatalf("redis with a valid JWT: %v", err)
	}
	c.Close()
	var oe *tunnel.OpenError
	if _, err := s.Dial(ctx, "postgres"); !errors.As(err, &oe) || oe.Status != tunnel.OpenForbidden {
		t.Fatalf("postgres outside the token: %v", err)
	}
	// Time passes beyond exp: streams opened now are refused.
	now.Add(120)
	if _, err := s.Dial(ctx, "redis"); !errors.As(err, &oe) || oe.Status != tunnel.OpenForbidden || !strings.Contains(oe.Message, "expired") {
		t.Fatalf("redis after expiry: %v", err)
	}
	if st := g.srv.Stats(); st.RefusedAuth != int64(len(refusals)) || st.StreamsForbidden != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestJWTPublicKey: EdDSA tokens checked against a public key file.
func TestJWTPublicKey(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	keyFile := filepath.Join(t.TempDir(), "pub.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	g := startGatewayOpts(t, fmt.Sprintf("[auth]\njwt_public_key_file = %q\njwt_issuer = \"issuer-1\"\n[services.redis]\nbackend = %q\n", keyFile, echoBackend(t)), nil)
	exp := time.Now().Add(time.Minute).Unix()
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"exp": exp, "iss": "issuer-1", "services": []string{"redis"}}).SignedString(priv)
	s := connect(t, g.url, &client.Options{Token: tok})
	c, err := s.Dial(context.Background(), "redis")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	bad, _ := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"exp": exp, "iss": "issuer-2", "services": []string{"redis"}}).SignedString(priv)
	if _, err := client.Connect(context.Background(), g.url, &client.Options{Token: bad}); err == nil || !strings.Contains(err.Error(), "another issuer") {
		t.Fatalf("wrong issuer: %v", err)
	}
}

// rawHandshake sends a WebSocket handshake with the given extra headers and
// returns the response, and the Conn when it was upgraded.
func rawHandshake(t *testing.T, u string, header http.Header, subprotocols ...string) (*tunnel.Conn, *http.Response, error) {
	t.Helper()
	return tunnel.Dial(context.Background(), u, &tunnel.DialOptions{HTTPHeader: header, Subprotocols: subprotocols, Proxy: func(*http.Request) (*url.URL, error) { return nil, nil }})
}

// TestBrowserPath: the token travels as a subprotocol, the gateway selects
// only ferry.v1, and refusals for an allowed origin are WebSocket closes
// a page can read; a forbidden origin gets 403.
func TestBrowserPath(t *testing.T) {
	noLeaks(t)
	backend := echoBackend(t)
	g := startGateway(t, fmt.Sprintf(`
[server]
allowed_origins = ["https://app.example.com", "https://*.example.org"]
[limits]
max_sessions_per_ip = 1000
max_sessions_per_token = 1
[services.redis]
backend = %q
[[tokens]]
name = "alice"
sha256 = %q
services = ["redis"]
`, backend, tokenHash(testToken)))
	host := strings.TrimPrefix(strings.TrimSuffix(g.url, "/tunnel"), "ws://")
	origin := func(o string) http.Header { return http.Header{"Origin": {o}} }

	// Same origin with the token in the subprotocol: accepted, and only
	// ferry.v1 is echoed.
	c, resp, err := rawHandshake(t, g.url, origin("http://"+host), "ferry.v1", "ferry.token."+testToken)
	if err != nil {
		t.Fatalf("same-origin browser handshake: %v", err)
	}
	if got := resp.Header.Values("Sec-WebSocket-Protocol"); len(got) != 1 || got[0] != "ferry.v1" {
		t.Fatalf("selected subprotocol %q", got)
	}
	// A second session for the same token is over max_sessions_per_token:
	// 4429 for a page.
	c2, _, err := rawHandshake(t, g.url, origin("https://app.example.com"), "ferry.v1", "ferry.token."+testToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c2.Read(context.Background()); tunnel.CloseStatus(err) != 4429 || !strings.Contains(err.Error(), "maximum per token") {
		t.Fatalf("second session for the token: %v, want 4429", err)
	}
	c.CloseNow()

	closes := []struct {
		name   string
		origin string
		protos []string
		code   tunnel.StatusCode
		reason string
	}{
		{"bad token, allowed origin", "https://app.example.com", []string{"ferry.v1", "ferry.token.wrong"}, 4401, "not valid"},
		{"no token, pattern origin", "https://a.b.example.org", []string{"ferry.v1"}, 4401, "token is required"},
	}
	for _, tt := range closes {
		c, _, err := rawHandshake(t, g.url, origin(tt.origin), tt.protos...)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		_, _, err = c.Read(context.Background())
		var ce *tunnel.CloseError
		if !errors.As(err, &ce) || ce.Code != tt.code || !strings.Contains(ce.Reason, tt.reason) {
			t.Errorf("%s: %v, want close %d mentioning %q", tt.name, err, tt.code, tt.reason)
		}
	}
	statuses := []struct {
		name   string
		url    string
		header http.Header
		protos []string
		status int
		reason string
	}{
		{"forbidden origin", g.url, origin("https://evil.example.net"), []string{"ferry.v1", "ferry.token." + testToken}, 403, "may not open tunnels"},
		{"suffix is not a subdomain", g.url, origin("https://example.org"), []string{"ferry.v1"}, 403, "may not open tunnels"},
		{"no ferry.v1", g.url, http.Header{"Authorization": {"Bearer " + testToken}}, []string{"chat"}, 400, "ferry.v1"},
		{"token in the URL is ignored", g.url + "?token=" + testToken, nil, []string{"ferry.v1"}, 401, "token is required"},
		{"native client, bad token", g.url, http.Header{"Authorization": {"Bearer wrong"}}, []string{"ferry.v1"}, 401, "not valid"},
		{"basic auth", g.url, http.Header{"Authorization": {"Basic YTpi"}}, []string{"ferry.v1"}, 401, "Bearer"},
	}
	for _, tt := range statuses {
		_, resp, err := rawHandshake(t, tt.url, tt.header, tt.protos...)
		if err == nil || resp == nil || resp.StatusCode != tt.status || !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("%s: %v, want %d mentioning %q", tt.name, err, tt.status, tt.reason)
		}
	}
}

// TestSlowloris: a client that sends half a handshake and stops is cut off
// after handshake_timeout, and does not hold a slot.
func TestSlowloris(t *testing.T) {
	noLeaks(t)
	g := startGateway(t, baseConfig("[server]\nhandshake_timeout = \"200ms\"\n[limits]\nmax_pending_handshakes = 1\n"))
	addr := strings.TrimPrefix(strings.TrimSuffix(g.url, "/tunnel"), "ws://")
	var slow []net.Conn
	for i := 0; i < 5; i++ {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		io.WriteString(nc, "GET /tunnel HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
		slow = append(slow, nc)
	}
	for i, nc := range slow {
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(nc)
		if err != nil {
			t.Fatalf("slow client %d: %v (want the gateway to close it)", i, err)
		}
		_ = b
	}
	// A real client gets through afterwards.
	s := connect(t, g.url, nil)
	roundTripEcho(t, s)
}

// TestStreamFlood opens 10,000 streams on one session past the limit:
// each is refused with "limit reached" and the session lives on.
func TestStreamFlood(t *testing.T) {
	noLeaks(t)
	g := startGateway(t, baseConfig("[limits]\nmax_streams_per_session = 8\n"))
	s := connect(t, g.url, &client.Options{MaxTunnels: 1}) // the gateway's refusals, not extra tunnels
	ctx := context.Background()
	var held []net.Conn
	for i := 0; i < 8; i++ {
		c, err := s.Dial(ctx, "echo")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	const opens = 10000
	var refused atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < opens/16; i++ {
				_, err := s.Dial(ctx, "echo")
				var oe *tunnel.OpenError
				if errors.As(err, &oe) && oe.Status == tunnel.OpenLimit {
					refused.Add(1)
				} else {
					t.Errorf("open over the limit: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if refused.Load() != opens {
		t.Fatalf("%d of %d opens refused", refused.Load(), opens)
	}
	for _, c := range held {
		c.Close()
	}
	// The gateway counts a stream until both its directions have ended,
	// which follows the client's close by a round trip.
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := s.Dial(ctx, "echo")
		if err == nil {
			c.Close()
			break
		}
		var oe *tunnel.OpenError
		if !errors.As(err, &oe) || oe.Status != tunnel.OpenLimit || time.Now().After(deadline) {
			t.Fatalf("after closing the held streams: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := g.srv.Stats(); st.StreamsLimited < opens {
		t.Errorf("StreamsLimited = %d", st.StreamsLimited)
	}
}

// TestHandshakeFlood: one address over handshakes_per_second_per_ip gets
// 429 with the reason.
func TestHandshakeFlood(t *testing.T) {
	noLeaks(t)
	g := startGateway(t, baseConfig("[limits]\nhandshakes_per_second_per_ip = 5\n"))
	limited := 0
	for i := 0; i < 30; i++ {
		s, err := client.Connect(context.Background(), g.url, nil)
		if err == nil {
			s.Close()
			continue
		}
		var re *client.RefusedError
		if !errors.As(err, &re) || re.Status != http.StatusTooManyRequests || !strings.Contains(err.Error(), "too many handshakes") {
			t.Fatalf("handshake %d: %v", i, err)
		}
		limited++
	}
	if limited < 20 {
		t.Fatalf("only %d of 30 quick handshakes were limited at 5 per second", limited)
	}
	if st := g.srv.Stats(); st.RefusedRate != int64(limited) {
		t.Errorf("RefusedRate = %d, want %d", st.RefusedRate, limited)
	}
}

// TestOversizedAndBomb: a message over max_message_size, and a compressed
// message that inflates past it, close the tunnel with 1009.
func TestOversizedAndBomb(t *testing.T) {
	noLeaks(t)
	g := startGateway(t, baseConfig("[limits]\nmax_message_size = \"64KiB\"\n"))
	for _, tc := range []struct {
		name     string
		compress bool
		payload  []byte
	}{
		{"oversized frame", false, make([]byte, 100<<10)},
		{"decompression bomb", true, make([]byte, 8<<20)}, // zeros: about 8 KiB on the wire
	} {
		opts := &tunnel.DialOptions{Subprotocols: []string{"ferry.v1"}}
		if tc.compress {
			opts.Compression = &compress.Options{}
		}
		c, _, err := tunnel.Dial(context.Background(), g.url, opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := c.Compression(); ok != tc.compress {
			t.Fatalf("%s: compression %v", tc.name, ok)
		}
		c.Write(context.Background(), tunnel.MessageBinary, tc.payload)
		if _, _, err := c.Read(context.Background()); tunnel.CloseStatus(err) != tunnel.StatusMessageTooBig {
			t.Errorf("%s: %v, want 1009", tc.name, err)
		}
		c.CloseNow()
	}
}

// fakeResolver answers every lookup with fixed addresses and never asks
// the network.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestDeniedBackend: a backend whose name resolves into [network] deny is
// never dialed, whatever the name; nothing leaves the machine: the
// resolver is fake and the dial hook fails the test for any address but
// the allowed loopback backend.
func TestDeniedBackend(t *testing.T) {
	noLeaks(t)
	backend := echoBackend(t)
	allowed, _ := netip.ParseAddrPort(backend)
	var dialed atomic.Int64
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr != allowed.String() {
			t.Errorf("dialed %s, which the deny list should have stopped", addr)
			return nil, errors.New("test: refused to dial")
		}
		dialed.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	res := fakeResolver{
		"rebind.test":   {netip.MustParseAddr("127.0.0.2")},
		"metadata.test": {netip.MustParseAddr("169.254.169.254")},
		"mixed.test":    {netip.MustParseAddr("127.0.0.2"), allowed.Addr()},
	}
	g := startGatewayOpts(t, fmt.Sprintf(`
[network]
deny = ["127.0.0.2/32", "169.254.0.0/16"]
[services.rebind]
backend = "rebind.test:%[1]d"
public = true
[services.metadata]
backend = "metadata.test:80"
public = true
[services.mixed]
backend = "mixed.test:%[1]d"
public = true
`, allowed.Port()), &gateway.Options{Resolver: res, Dial: dial})
	s := connect(t, g.url, nil)
	var oe *tunnel.OpenError
	// A literal address inside the deny list is refused by the config
	// itself (gateway/config errors_test.go).
	for _, svc := range []string{"rebind", "metadata"} {
		if _, err := s.Dial(context.Background(), svc); !errors.As(err, &oe) || oe.Status != tunnel.OpenForbidden || !strings.Contains(oe.Message, "denied") {
			t.Errorf("%s: %v, want forbidden", svc, err)
		}
	}
	c, err := s.Dial(context.Background(), "mixed")
	if err != nil {
		t.Fatalf("mixed: %v (the allowed address should be dialed)", err)
	}
	c.Close()
	if dialed.Load() != 1 {
		t.Fatalf("dialed %d times", dialed.Load())
	}
	if st := g.srv.Stats(); st.BackendDenied != 3 {
		t.Errorf("BackendDenied = %d", st.BackendDenied)
	}
}

// TestTrustedProxies: X-Forwarded-For is believed only from trusted
// proxies, so per-address limits count clients behind a proxy.
func TestTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		trusted string
		xff     string
		limited bool // the second session from "the same client" is refused
	}{
		{`["127.0.0.1/32"]`, "203.0.113.7", true},
		{`[]`, "203.0.113.7", true}, // not trusted: the proxy's own address counts
		{`["127.0.0.1/32"]`, "", true},
	} {
		g := startGateway(t, fmt.Sprintf("[server]\ntrusted_proxies = %s\n[limits]\nmax_sessions_per_ip = 1\n[services.echo]\nbackend = \"builtin:echo\"\npublic = true\n", tc.trusted))
		h := http.Header{}
		if tc.xff != "" {
			h.Set("X-Forwarded-For", tc.xff)
		}
		c1, _, err := rawHandshake(t, g.url, h, "ferry.v1")
		if err != nil {
			t.Fatal(err)
		}
		// From the same proxy, a different client behind it.
		h2 := http.Header{"X-Forwarded-For": {"198.51.100.9"}}
		c2, _, err := rawHandshake(t, g.url, h2, "ferry.v1")
		differentClientOK := err == nil
		if c2 != nil {
			c2.CloseNow()
		}
		c1.CloseNow()
		wantOK := tc.trusted != `[]`
		if differentClientOK != wantOK {
			t.Errorf("trusted %s: second client behind the proxy admitted=%v, want %v (%v)", tc.trusted, differentClientOK, wantOK, err)
		}
	}
}

// TestStreamHoarding: a client that opens streams past the limit and
// never closes the refused ones holds at most RefusedStreams of them: the
// gateway resets every further one at once, so yamux cannot be made to
// buffer for them, and the session lives on.
func TestStreamHoarding(t *testing.T) {
	noLeaks(t)
	g := startGateway(t, baseConfig("[limits]\nmax_streams_per_session = 4\n"))
	c, _, err := tunnel.Dial(context.Background(), g.url, &tunnel.DialOptions{Subprotocols: []string{"ferry.v1"}})
	if err != nil {
		t.Fatal(err)
	}
	mux, err := yamux.Client(c.StreamConn(), tunnel.MuxConfig(tunnel.DefaultWindow))
	if err != nil {
		t.Fatal(err)
	}
	defer mux.Close()
	req, _ := tunnel.AppendOpenRequest(nil, "nosuch")
	var open []*yamux.Stream
	resets := 0
	for i := 0; i < 400 && !mux.IsClosed(); i++ {
		st, err := mux.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		st.Write(req)
		st.Write(make([]byte, 16<<10)) // junk after the request
		// Wait for the answer, so the count below does not depend on how
		// far the gateway's accept loop lags behind.
		if _, _, err := tunnel.ReadOpenResponse(st); err != nil {
			if !errors.Is(err, yamux.ErrConnectionReset) {
				t.Fatalf("open %d: %v, want an answer or a reset", i, err)
			}
			resets++
			continue
		}
		open = append(open, st) // never closed
	}
	if mux.IsClosed() {
		t.Fatal("the session was closed")
	}
	if len(open) != gateway.RefusedStreams || resets != 400-gateway.RefusedStreams {
		t.Errorf("%d refusals answered and held, %d reset; want %d and the rest", len(open), resets, gateway.RefusedStreams)
	}
	// The gateway holds the answered ones only, the reset ones are gone
	// (the last reset is read before the next bytes from the client).
	if _, err := mux.Ping(); err != nil {
		t.Fatal(err)
	}
	if n := g.srv.MuxStreams(); n > gateway.RefusedStreams+1 {
		t.Errorf("the gateway's yamux holds %d streams", n)
	}
}
