package gateway_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/gateway"
	"github.com/ferrygw/ferry/gateway/config"
	"github.com/ferrygw/ferry/tunnel"
	"github.com/hashicorp/yamux"
)

// exposeConfig: "laptop" is exposed by clients; "exposer" may expose it,
// "user" may open it, "plain" may open it but not expose it.
func exposeConfig(extra string) string {
	return baseConfig(extra + fmt.Sprintf(`
[[tokens]]
name = "exposer"
sha256 = %q
expose = ["laptop"]
[[tokens]]
name = "user"
sha256 = %q
services = ["laptop", "db"]
[[tokens]]
name = "plain"
sha256 = %q
services = ["laptop"]
[services.laptop]
backend = "expose"
[services.db]
backend = "127.0.0.1:1"
`, tokenHash("exposer-token"), tokenHash("user-token"), tokenHash("plain-token")))
}

// expose registers laptop with the exposer token and serves it from the
// local TCP address addr until the test ends.
func expose(t *testing.T, url, addr, id string) *client.Listener {
	t.Helper()
	s := connect(t, url, &client.Options{Token: "exposer-token", MinBackoff: 50 * time.Millisecond})
	l, err := s.Expose(context.Background(), "laptop", &client.ExposeOptions{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		l.ServeTCP(addr, 5*time.Second, nil)
	}()
	t.Cleanup(func() { l.Close(); <-served })
	return l
}

// hashRoundTrip sends n random-ish bytes through service and checks that
// the hash backend's answer is their SHA-256.
func hashRoundTrip(t *testing.T, s *client.Session, service string, n int) {
	t.Helper()
	c, err := s.Dial(context.Background(), service)
	if err != nil {
		t.Fatalf("dial %s: %v", service, err)
	}
	defer c.Close()
	h := sha256.New()
	chunk := bytes.Repeat([]byte("exposed-bytes-"), 4096)
	for sent := 0; sent < n; sent += len(chunk) {
		h.Write(chunk)
		if _, err := c.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, h.Sum(nil)) {
		t.Fatalf("through %s: %x, %v; want %x", service, got, err, h.Sum(nil))
	}
}

// TestExpose: a service that only a client can reach is reached through
// the gateway, bytes intact; with no exposer, dials get status 10.
func TestExpose(t *testing.T) {
	t.Parallel()
	g := startGateway(t, exposeConfig(""))
	user := connect(t, g.url, &client.Options{Token: "user-token", MinBackoff: time.Hour})
	var oe *tunnel.OpenError
	if _, err := user.Dial(context.Background(), "laptop"); !errors.As(err, &oe) || oe.Status != tunnel.OpenNotExposed || !strings.Contains(oe.Message, "no client exposes laptop") {
		t.Fatalf("dial before anyone exposes: %v", err)
	}
	l := expose(t, g.url, hashBackend(t), "one")
	hashRoundTrip(t, user, "laptop", 8<<20)
	// The exposer's local service refuses: the dialer is told so.
	l.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := closed.Addr().String()
	closed.Close()
	expose(t, g.url, addr, "two")
	if _, err := user.Dial(context.Background(), "laptop"); !errors.As(err, &oe) || oe.Status != tunnel.OpenRefused || !strings.Contains(oe.Message, "cannot reach laptop") {
		t.Fatalf("dial when the local service refuses: %v", err)
	}
}

// TestExposeRefusals: who may expose what, and how many.
func TestExposeRefusals(t *testing.T) {
	t.Parallel()
	g := startGateway(t, exposeConfig("[limits]\nmax_exposers_per_service = 1\n"))
	for _, tc := range []struct {
		name, token, service string
		status               tunnel.OpenStatus
		msg                  string
	}{
		{"no credential", "", "laptop", tunnel.OpenForbidden, "exposing laptop needs a token"},
		{"no expose right", "plain-token", "laptop", tunnel.OpenForbidden, "token plain may not expose laptop"},
		{"a configured service", "exposer-token", "db", tunnel.OpenForbidden, "service db is not exposed by clients"},
		{"unknown service", "exposer-token", "nope", tunnel.OpenUnknownService, `no service named "nope"`},
	} {
		s := connect(t, g.url, &client.Options{Token: tc.token, MinBackoff: time.Hour})
		_, err := s.Expose(context.Background(), tc.service, nil)
		var oe *tunnel.OpenError
		if !errors.As(err, &oe) || oe.Status != tc.status || !strings.Contains(oe.Message, tc.msg) {
			t.Errorf("%s: %v, want status %d and %q", tc.name, err, tc.status, tc.msg)
		}
	}
	expose(t, g.url, hashBackend(t), "first")
	s := connect(t, g.url, &client.Options{Token: "exposer-token", MinBackoff: time.Hour})
	_, err := s.Expose(context.Background(), "laptop", &client.ExposeOptions{ID: "second"})
	var oe *tunnel.OpenError
	if !errors.As(err, &oe) || oe.Status != tunnel.OpenLimit || !strings.Contains(oe.Message, "already has 1 exposers") {
		t.Errorf("a second exposer over the limit: %v", err)
	}
}

// TestExposeReplace: an exposer that registers again with its ID (a
// restart) takes the name back at once, and the old registration ends
// with ErrReplaced.
func TestExposeReplace(t *testing.T) {
	t.Parallel()
	g := startGateway(t, exposeConfig("[limits]\nmax_exposers_per_service = 1\n"))
	user := connect(t, g.url, &client.Options{Token: "user-token", MinBackoff: time.Hour})
	old := expose(t, g.url, hashBackend(t), "laptop-1")
	expose(t, g.url, hashBackend(t), "laptop-1") // not refused: it replaces
	if _, err := old.Accept(); !errors.Is(err, client.ErrReplaced) {
		t.Fatalf("the replaced Listener: %v", err)
	}
	hashRoundTrip(t, user, "laptop", 1<<20)
}

// TestExposeFailover: two exposers share the streams; one goes away mid
// transfer: the other's streams are untouched and new dials all succeed.
func TestExposeFailover(t *testing.T) {
	t.Parallel()
	g := startGateway(t, exposeConfig(""))
	user := connect(t, g.url, &client.Options{Token: "user-token", MinBackoff: time.Hour})
	var mu sync.Mutex
	hits := map[string]int{}
	backend := func(name string) string {
		return tcpBackend(t, func(c *net.TCPConn) {
			mu.Lock()
			hits[name]++
			mu.Unlock()
			h := sha256.New()
			io.Copy(h, c)
			c.Write(h.Sum(nil))
		})
	}
	a := expose(t, g.url, backend("a"), "a")
	expose(t, g.url, backend("b"), "b")
	// Four streams open at once spread over both exposers.
	var open []*client.Conn
	for range 4 {
		c, err := user.Dial(context.Background(), "laptop")
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		open = append(open, c)
	}
	waitUntil(t, 5*time.Second, "both backends to be reached", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return hits["a"]+hits["b"] == 4
	})
	mu.Lock()
	if hits["a"] != 2 || hits["b"] != 2 {
		t.Errorf("4 open streams went %v, want 2 to each exposer", hits)
	}
	mu.Unlock()
	a.Close() // exposer a goes, its streams with it
	var ok, failed int
	want := sha256.Sum256([]byte("x"))
	for _, c := range open {
		c.CloseWrite()
		got, err := io.ReadAll(c)
		switch {
		case err == nil && bytes.Equal(got, want[:]):
			ok++
		case err != nil:
			failed++ // a's: an error, never a clean end with a wrong answer
		default:
			t.Errorf("a stream ended cleanly with %x", got)
		}
		c.Close()
	}
	if ok != 2 || failed != 2 {
		t.Errorf("after a went: %d streams intact, %d failed; want 2 and 2", ok, failed)
	}
	for range 5 {
		hashRoundTrip(t, user, "laptop", 64<<10)
	}
}

// TestProtocolDocExpose checks the examples of docs/PROTOCOL.md §7 against
// the codec and a real gateway: the registration request as the doc
// writes it is accepted with the doc's answer, and a drain withdraws it
// with the doc's bytes.
func TestProtocolDocExpose(t *testing.T) {
	ex := docExamples(t)
	for _, name := range []string{"register-request", "register-ok", "withdrawal-draining"} {
		if ex[name] == nil {
			t.Fatalf("docs/PROTOCOL.md lacks the example %s", name)
		}
	}
	if enc, _ := tunnel.AppendRegisterRequest(nil, "laptop", "host-1"); !bytes.Equal(enc, ex["register-request"]) {
		t.Errorf("AppendRegisterRequest gives %x, the doc says %x", enc, ex["register-request"])
	}
	g := startGateway(t, exposeConfig(""))
	ws, _, err := tunnel.Dial(context.Background(), g.url, &tunnel.DialOptions{Subprotocols: []string{tunnel.Subprotocol},
		HTTPHeader: http.Header{"Authorization": {"Bearer exposer-token"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	mux, err := yamux.Client(ws.StreamConn(), tunnel.MuxConfig(tunnel.DefaultWindow))
	if err != nil {
		t.Fatal(err)
	}
	defer mux.Close()
	st, err := mux.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(ex["register-request"]); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(ex["register-ok"]))
	if _, err := io.ReadFull(st, got); err != nil || !bytes.Equal(got, ex["register-ok"]) {
		t.Fatalf("the gateway answered %x (%v), the doc says %x", got, err, ex["register-ok"])
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g.srv.Shutdown(ctx)
	}()
	rest, err := io.ReadAll(st)
	if err != nil || !bytes.Equal(rest, ex["withdrawal-draining"]) {
		t.Fatalf("the drain's withdrawal was %x (%v), the doc says %x", rest, err, ex["withdrawal-draining"])
	}
}

// TestExposeReload: a reload that takes the right to expose away
// withdraws the registration, and the exposer is told why.
func TestExposeReload(t *testing.T) {
	t.Parallel()
	g := startFileGateway(t, exposeConfig(""))
	l := expose(t, g.url, hashBackend(t), "one")
	res, err := g.rewrite(t, strings.Replace(exposeConfig(""), `expose = ["laptop"]`, `services = ["laptop"]`, 1))
	if err != nil {
		t.Fatal(err)
	}
	if res.Withdrawn != 1 {
		t.Fatalf("reload: %+v", res)
	}
	var oe *tunnel.OpenError
	if _, err := l.Accept(); !errors.As(err, &oe) || oe.Status != tunnel.OpenForbidden || !strings.Contains(oe.Message, "may no longer expose laptop") {
		t.Fatalf("the withdrawn Listener: %v", err)
	}
}

// TestExposeGatewayRestart: the gateway stops (draining) and comes back
// on the same address: the exposer registers again on its own, and dials
// reach it.
func TestExposeGatewayRestart(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse("test.toml", []byte(exposeConfig("")))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	url := "ws://" + addr + "/tunnel"
	run := func(ln net.Listener) (*gateway.Server, chan struct{}) {
		srv, err := gateway.New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { srv.Serve(ln); close(done) }()
		return srv, done
	}
	srv, done := run(ln)
	registered := make(chan struct{}, 8)
	s := connect(t, url, &client.Options{Token: "exposer-token", MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	l, err := s.Expose(context.Background(), "laptop", &client.ExposeOptions{ID: "restart", OnStatus: func(st client.Status) {
		if st.State == client.Connected {
			registered <- struct{}{}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); l.ServeTCP(hashBackend(t), 5*time.Second, nil) }()
	defer func() { l.Close(); <-served }()
	<-registered
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	srv.Shutdown(ctx)
	cancel()
	<-done
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	srv, done = run(ln)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}()
	<-registered // again, on the new gateway
	user := connect(t, url, &client.Options{Token: "user-token", MinBackoff: time.Hour})
	hashRoundTrip(t, user, "laptop", 1<<20)
}
