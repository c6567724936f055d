//go:build linux

package tests

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrygw/ferry/gateway"
	"github.com/ferrygw/ferry/gateway/config"
	"github.com/golang-jwt/jwt/v5"
)

// wasmSuiteJS defines globalThis.suite in a page: the page side of the
// browser tests (and of the browser benchmark).
//
//go:embed testdata/wasm_suite.js
var wasmSuiteJS string

// wasmStreams is how many streams the bulk test runs in parallel, each
// carrying wasmBulkSize bytes (smaller under -race: wasm_race_test.go).
const wasmStreams = 32

// wasmFloodTotal is what the flood backend sends to a page that reads
// nothing at first; wasmStallBound is the most it may get written before
// it stalls: yamux's 1 MiB window, the gateway's copy buffer and the
// kernel's socket buffers on both sides of the loopback connection.
const (
	wasmFloodTotal = 64 << 20
	wasmStallBound = 16 << 20
)

// wasmGateway is a gateway run in process, which the test can stop and
// start again on the same address.
type wasmGateway struct {
	t    *testing.T
	cfg  *config.Config
	addr string // 127.0.0.1:port, fixed by the first start

	mu   sync.Mutex
	srv  *gateway.Server
	done chan struct{} // closed when Serve has returned
}

func startWasmGateway(t *testing.T, toml string) *wasmGateway {
	t.Helper()
	cfg, err := config.Parse("wasm-test.toml", []byte(toml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	g := &wasmGateway{t: t, cfg: cfg, addr: "127.0.0.1:0"}
	g.start()
	t.Cleanup(g.stop)
	return g
}

// tLogWriter passes the gateway's log lines to the test log.
type tLogWriter struct{ t *testing.T }

func (w tLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (g *wasmGateway) start() {
	g.t.Helper()
	srv, err := gateway.New(g.cfg, &gateway.Options{Log: slog.New(slog.NewTextHandler(tLogWriter{g.t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		g.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		g.t.Fatal(err)
	}
	g.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil {
			g.t.Errorf("gateway: %v", err)
		}
	}()
	g.mu.Lock()
	g.srv, g.done = srv, done
	g.mu.Unlock()
}

// stop shuts the gateway down: its listener closes, and every tunnel is
// closed with 1001 once its streams are done (at once, if none is open).
func (g *wasmGateway) stop() {
	g.mu.Lock()
	srv, done := g.srv, g.done
	g.srv = nil
	g.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		g.t.Errorf("gateway shutdown: %v", err)
	}
	<-done
}

func (g *wasmGateway) url(path string) string { return "http://" + g.addr + path }

// wasmBulk is what the page's suite.bulk returns: each stream's SHA-256
// sent and received (hex) and its size, and the time and rate of all.
type wasmBulk struct {
	Results []struct {
		Sent, Received string
		Bytes          int
	}
	MS, MBps float64
}

// checkBulk checks a suite.bulk run of streams of size bytes each: every
// stream came back whole, and the backend (a hashEchoBackend, what names
// it in messages) received exactly what the page sent.
func checkBulk(t *testing.T, ctx context.Context, got wasmBulk, streams, size int, hashes <-chan string, what string) {
	t.Helper()
	if len(got.Results) != streams {
		t.Fatalf("%d results, want %d", len(got.Results), streams)
	}
	var sent []string
	for i, r := range got.Results {
		if r.Bytes != size || r.Sent != r.Received {
			t.Errorf("stream %d: %d bytes came back with SHA-256 %s; sent %d with %s", i, r.Bytes, r.Received, size, r.Sent)
		}
		sent = append(sent, r.Sent)
	}
	var received []string
	for range streams {
		select {
		case h := <-hashes:
			received = append(received, h)
		case <-ctx.Done():
			t.Fatalf("%s did not see every stream end", what)
		}
	}
	slices.Sort(sent)
	slices.Sort(received)
	if !slices.Equal(sent, received) {
		t.Errorf("%s received SHA-256s %v, the page sent %v", what, received, sent)
	}
}

// hashEchoBackend echoes every connection until end of input, then
// half-closes, and sends the SHA-256 (hex) of what it received to hashes.
func hashEchoBackend(t *testing.T, hashes chan<- string) string {
	return tcpServer(t, func(c net.Conn) {
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(c, h), c); err != nil {
			return
		}
		c.(*net.TCPConn).CloseWrite()
		hashes <- hex.EncodeToString(h.Sum(nil))
	})
}

// floodStall is what the flood backend saw of one connection.
type floodStall struct {
	written int64 // bytes written when a write first stalled, or total if none did
	stalled bool
}

// stallWriter writes to a backend connection and reports, once, the
// first write that makes no progress for 500 ms: a stall, the peer reads
// nothing. Writing then goes on, blocking, until the peer reads again.
type stallWriter struct {
	c        net.Conn
	stalls   chan<- floodStall
	written  int64
	reported bool
}

func (w *stallWriter) write(p []byte) error {
	for len(p) > 0 {
		if !w.reported {
			w.c.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
		}
		m, err := w.c.Write(p)
		p = p[m:]
		w.written += int64(m)
		if errors.Is(err, os.ErrDeadlineExceeded) && !w.reported {
			w.reported = true
			w.c.SetWriteDeadline(time.Time{})
			w.stalls <- floodStall{written: w.written, stalled: true}
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// floodBackend writes total bytes (byte i is i mod 251) to each
// connection, then closes it, through a stallWriter; a connection that
// never stalled reports what it wrote at the end.
func floodBackend(t *testing.T, total int64, stalls chan<- floodStall) string {
	return tcpServer(t, func(c net.Conn) {
		buf := make([]byte, 64<<10)
		w := &stallWriter{c: c, stalls: stalls}
		for w.written < total {
			n := int(min(int64(len(buf)), total-w.written))
			for i := range n {
				buf[i] = byte((w.written + int64(i)) % 251)
			}
			if w.write(buf[:n]) != nil {
				return
			}
		}
		if !w.reported {
			stalls <- floodStall{written: w.written}
		}
	})
}

// wasmErr is a FerryError (or other error) as the page saw it.
type wasmErr struct {
	Name, Message, Reason string
	Code                  int
	IsFerryError          bool
}

type wasmStatus struct {
	State string
	Error *wasmErr
}

// TestWasmBrowser runs the browser client in headless Chromium, in a page
// of the gateway: the demo page, refusals, 32 parallel streams of random
// bytes checked by SHA-256 on both sides, backpressure, Redis with a
// static token and with a JWT, and a gateway restart that the client
// reports and recovers from.
func TestWasmBrowser(t *testing.T) {
	t.Parallel()
	b := startCDPBrowser(t)

	redisAddr := "127.0.0.1:1"
	if redisPeer.available() == nil {
		redisAddr = startRedis(t)
	}
	hashes := make(chan string, 2*wasmStreams)
	echoAddr := hashEchoBackend(t, hashes)
	stalls := make(chan floodStall, 1)
	floodAddr := floodBackend(t, wasmFloodTotal, stalls)
	token, tokenHash := newToken(t)
	secret := "wasm-browser-test-hs256-secret-0123456789"
	secretFile := filepath.Join(t.TempDir(), "jwt.secret")
	if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	jwtToken, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"exp": time.Now().Add(time.Hour).Unix(), "services": []string{"redis"},
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	g := startWasmGateway(t, fmt.Sprintf(`
[limits]
max_sessions_per_ip = 1000
handshakes_per_second_per_ip = 1000
[auth]
jwt_secret_file = %q
[services.echo]
backend = "builtin:echo"
public = true
[services.tcpecho]
backend = %q
public = true
[services.flood]
backend = %q
public = true
[services.redis]
backend = %q
[services.secret]
backend = %q
[[tokens]]
name = "page"
sha256 = %q
services = ["redis"]
`, secretFile, echoAddr, floodAddr, redisAddr, echoAddr, tokenHash))

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	p, err := b.openPage(ctx, g.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("page console:\n%s", p.console)
		}
	}()
	eval := func(t *testing.T, expr string, out any) {
		t.Helper()
		if err := p.eval(ctx, expr, out); err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
	}
	// The demo page connects by itself and says hello to the echo service.
	t.Run("demo page", func(t *testing.T) {
		if err := p.eval(ctx, wasmSuiteJS, nil); err != nil {
			t.Fatal(err)
		}
		var got struct {
			Log, State string
			FirstEcho  float64
		}
		eval(t, `suite.demoEcho()`, &got)
		if strings.Count(got.Log, "hello from Chrom") != 2 || !strings.HasPrefix(got.State, "connected") {
			t.Errorf("the demo page shows the tunnel %q and the log:\n%s\nwant its hello sent and echoed", got.State, got.Log)
		}
		t.Logf("the demo page had its hello echoed %.0f ms after navigation started", got.FirstEcho)
	})

	// The rest runs in a page of the gateway's origin that holds no client
	// of its own (/healthz), so that what client.wasm holds is this test's.
	if err := p.navigate(ctx, g.url("/healthz")); err != nil {
		t.Fatal(err)
	}
	if err := p.eval(ctx, wasmSuiteJS, nil); err != nil {
		t.Fatal(err)
	}
	var exports []string
	eval(t, `suite.load()`, &exports)
	if want := []string{"FerryError", "connect", "stats"}; !slices.Equal(exports, want) {
		t.Errorf("ferry.js exports %v, want %v", exports, want)
	}
	type connected struct {
		OK    bool
		URL   string
		Error *wasmErr
	}
	var c connected
	eval(t, `suite.connect("main")`, &c)
	if !c.OK {
		t.Fatalf("connect: %+v", c.Error)
	}
	if want := "ws://" + g.addr + "/tunnel"; c.URL != want {
		t.Errorf("the default URL is %s, want %s", c.URL, want)
	}

	t.Run("echo", func(t *testing.T) {
		for _, svc := range []string{"echo", "tcpecho"} {
			var got struct {
				Text   string
				Opened struct{ Service string }
			}
			text := "hello from the browser, τ " + svc
			eval(t, fmt.Sprintf(`suite.echo("main", %q, %q)`, svc, text), &got)
			if got.Text != text || got.Opened.Service != svc {
				t.Errorf("%s: got %+v, want %q back", svc, got, text)
			}
		}
		select { // tcpecho's
		case <-hashes:
		case <-ctx.Done():
			t.Fatal("the echo backend did not see the stream end")
		}
	})

	t.Run("refusals", func(t *testing.T) {
		cases := []struct {
			expr   string
			code   int
			reason string
		}{
			{`suite.dialError("main", "nope")`, 1, `no service named "nope"`},
			{`suite.dialError("main", "redis")`, 2, "needs a token"},
			{`suite.connect("bad", {token: "not-a-valid-token"})`, 4401, "not valid"},
			{`suite.connect("bad", {token: "has space"})`, 0, ""},
		}
		for _, tc := range cases {
			var got connected
			eval(t, tc.expr, &got)
			if got.OK || got.Error == nil {
				t.Errorf("%s: succeeded", tc.expr)
				continue
			}
			e := got.Error
			if e.Code != tc.code || !strings.Contains(e.Reason, tc.reason) || !e.IsFerryError || e.Name != "FerryError" {
				t.Errorf("%s: got %+v; want a FerryError with code %d and a reason with %q", tc.expr, *e, tc.code, tc.reason)
			}
			if strings.Contains(e.Message, "has space") {
				t.Errorf("%s: the message shows the token: %q", tc.expr, e.Message)
			}
			t.Logf("%s: %s", tc.expr, e.Message)
		}
	})

	t.Run("bulk", func(t *testing.T) {
		var got wasmBulk
		eval(t, fmt.Sprintf(`suite.bulk("main", "tcpecho", %d, %d)`, wasmStreams, wasmBulkSize), &got)
		checkBulk(t, ctx, got, wasmStreams, wasmBulkSize, hashes, "the echo backend")
		t.Logf("%d streams × %d MiB echoed in %.0f ms: %.1f MB/s both ways together", wasmStreams, wasmBulkSize>>20, got.MS, got.MBps)
	})

	t.Run("backpressure", func(t *testing.T) {
		eval(t, `suite.floodStart("main", "flood")`, nil)
		var st floodStall
		select {
		case st = <-stalls:
		case <-ctx.Done():
			t.Fatal("the flood backend reported nothing")
		}
		if !st.stalled || st.written > wasmStallBound {
			t.Fatalf("the backend wrote %d bytes (stalled: %v) to a page that read nothing; want a stall within %d", st.written, st.stalled, wasmStallBound)
		}
		t.Logf("a page that reads nothing stalled the backend after %.1f MiB", float64(st.written)/(1<<20))
		var got struct{ Bytes, FirstBad int64 }
		eval(t, `suite.floodDrain()`, &got)
		if got.Bytes != wasmFloodTotal || got.FirstBad != -1 {
			t.Errorf("the page read %d bytes (first wrong at %d), want %d", got.Bytes, got.FirstBad, wasmFloodTotal)
		}
	})

	t.Run("redis", func(t *testing.T) {
		redisPeer.require(t)
		for _, cred := range []struct{ name, token string }{{"static", token}, {"jwt", jwtToken}} {
			eval(t, fmt.Sprintf(`suite.connect(%q, {token: %q})`, cred.name, cred.token), &c)
			if !c.OK {
				t.Fatalf("%s: connect: %+v", cred.name, c.Error)
			}
			var got struct {
				Ping, Set, Get string
				EndAfterQuit   bool
			}
			value := "value from the browser via " + cred.name + " ☃"
			eval(t, fmt.Sprintf(`suite.redis(%q, "redis", "ferry-wasm-%s", %q)`, cred.name, cred.name, value), &got)
			if got.Ping != "+PONG" || got.Set != "+OK" || got.Get != value || !got.EndAfterQuit {
				t.Errorf("%s: redis answered %+v", cred.name, got)
			}
			var refused connected
			eval(t, fmt.Sprintf(`suite.dialError(%q, "secret")`, cred.name), &refused)
			if refused.OK || refused.Error == nil || refused.Error.Code != 2 || !strings.Contains(refused.Error.Reason, "secret") {
				t.Errorf("%s: dial secret: %+v, want a FerryError with code 2 (forbidden) and the gateway's reason", cred.name, refused)
			} else {
				t.Logf("%s: dial secret: %s", cred.name, refused.Error.Message)
			}
			eval(t, fmt.Sprintf(`suite.close(%q)`, cred.name), nil)
		}
	})

	t.Run("restart", func(t *testing.T) {
		var before int
		eval(t, `suite.statuses("main").length`, &before)
		g.stop()
		var rec struct {
			Index  int
			Status wasmStatus
		}
		eval(t, fmt.Sprintf(`suite.waitStatus("main", "reconnecting", %d)`, before), &rec)
		if e := rec.Status.Error; e == nil || e.Code != 1001 || e.Reason == "" || !e.IsFerryError {
			t.Errorf("the page was told %s (%+v) when the gateway shut down; want a FerryError with close code 1001 and the gateway's reason", rec.Status.State, rec.Status.Error)
		} else {
			t.Logf("onstatus: reconnecting: %s", e.Message)
		}
		// A dial made while reconnecting waits for the next tunnel.
		eval(t, `(globalThis.pendingEcho = suite.echo("main", "echo", "after the restart"), true)`, nil)
		g.start()
		var up struct{ Index int }
		eval(t, fmt.Sprintf(`suite.waitStatus("main", "connected", %d)`, rec.Index), &up)
		var got struct{ Text string }
		eval(t, `globalThis.pendingEcho`, &got)
		if got.Text != "after the restart" {
			t.Errorf("the dial made while reconnecting echoed %q", got.Text)
		}
		var bulk struct {
			Results []struct{ Sent, Received string }
		}
		eval(t, `suite.bulk("main", "tcpecho", 4, 65536)`, &bulk)
		for i, r := range bulk.Results {
			if r.Sent != r.Received {
				t.Errorf("after the restart, stream %d came back different", i)
			}
			<-hashes
		}
		var all []wasmStatus
		eval(t, `suite.statuses("main")`, &all)
		var states []string
		for _, s := range all {
			states = append(states, s.State)
		}
		t.Logf("onstatus: %v", states)
	})

	t.Run("released", func(t *testing.T) {
		eval(t, `suite.close("main")`, nil)
		var st struct{ Gateways, Sockets, WebSockets int }
		eval(t, `suite.stats()`, &st)
		if st.Gateways != 0 || st.Sockets != 0 || st.WebSockets != 0 {
			t.Errorf("after closing every gateway, client.wasm still holds %+v", st)
		}
	})
}
