//go:build !js

package client_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/tunnel"
	"github.com/hashicorp/yamux"
	"go.uber.org/goleak"
)

// fakeGateway is the least of a gateway, over the real tunnel package and
// yamux on a real TCP listener: every open is answered ok; "echo" echoes,
// "name" sends the gateway's name and ends, "blob" sends blob and ends;
// "busy" is answered with status 9; a registration (ferry expose) is
// answered ok and held.
// The test drives its sessions (GoAway, close with 1001) itself.
type fakeGateway struct {
	name     string
	url      string
	blob     []byte
	srv      *http.Server
	sessions chan *fakeSession // each tunnel, as it is accepted

	mu  sync.Mutex
	all []*fakeSession
}

// fakeSession is one tunnel of a fakeGateway.
type fakeSession struct {
	conn    *tunnel.Conn
	mux     *yamux.Session
	done    chan struct{} // closed when the tunnel has ended and its streams are served
	streams sync.WaitGroup
}

func startFake(t *testing.T, name string, blob []byte) *fakeGateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &fakeGateway{name: name, url: "ws://" + ln.Addr().String() + "/tunnel", blob: blob, sessions: make(chan *fakeSession, 16)}
	g.srv = &http.Server{Handler: g}
	served := make(chan struct{})
	go func() { _ = g.srv.Serve(ln); close(served) }()
	t.Cleanup(func() {
		_ = g.srv.Close()
		<-served
		g.mu.Lock()
		all := g.all
		g.mu.Unlock()
		for _, fs := range all {
			fs.conn.CloseNow()
			fs.mux.Close()
			<-fs.done
		}
	})
	return g
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := tunnel.Accept(w, r, &tunnel.AcceptOptions{Subprotocols: []string{tunnel.Subprotocol}})
	if err != nil {
		return
	}
	mux, err := yamux.Server(c.StreamConn(), tunnel.MuxConfig(tunnel.DefaultWindow))
	if err != nil {
		c.CloseNow()
		return
	}
	fs := &fakeSession{conn: c, mux: mux, done: make(chan struct{})}
	defer close(fs.done)
	defer fs.streams.Wait()
	g.mu.Lock()
	g.all = append(g.all, fs)
	g.mu.Unlock()
	g.sessions <- fs
	for {
		st, err := mux.AcceptStream()
		if err != nil {
			<-c.Done()
			return
		}
		fs.streams.Add(1)
		go func() {
			defer fs.streams.Done()
			g.serve(st)
		}()
	}
}

func (g *fakeGateway) serve(st *yamux.Stream) {
	defer st.Close()
	req, err := tunnel.ReadRequest(st)
	if err != nil {
		return
	}
	svc := req.Service
	if req.Register { // an exposer: registered until it ends the stream
		if _, err := st.Write(tunnel.AppendOpenResponse(nil, tunnel.OpenOK, "")); err == nil {
			_, _ = io.Copy(io.Discard, st)
		}
		return
	}
	if svc == "busy" {
		_, _ = st.Write(tunnel.AppendOpenResponse(nil, tunnel.OpenBusy, "the gateway's buffer budget is spent"))
		return
	}
	if _, err := st.Write(tunnel.AppendOpenResponse(nil, tunnel.OpenOK, "")); err != nil {
		return
	}
	switch svc {
	case "echo":
		_, _ = io.Copy(st, st)
	case "name", "blob":
		out := []byte(g.name)
		if svc == "blob" {
			out = g.blob
		}
		if _, err := st.Write(out); err != nil {
			return
		}
		_ = st.Close()
		_, _ = io.Copy(io.Discard, st)
	}
}

// next returns the gateway's next tunnel.
func (g *fakeGateway) next(t *testing.T) *fakeSession {
	t.Helper()
	select {
	case fs := <-g.sessions:
		return fs
	case <-time.After(10 * time.Second):
		t.Fatalf("gateway %s: no tunnel", g.name)
		return nil
	}
}

// ended waits for the tunnel to end and returns the close the gateway saw.
func (fs *fakeSession) ended(t *testing.T) *tunnel.CloseError {
	t.Helper()
	select {
	case <-fs.conn.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the tunnel is still up")
	}
	var ce *tunnel.CloseError
	if !errors.As(fs.conn.Err(), &ce) {
		t.Fatalf("tunnel ended with %v", fs.conn.Err())
	}
	return ce
}

// goAway sends the client a GoAway. An idle tunnel may be closed by the
// client before GoAway returns.
func (fs *fakeSession) goAway(t *testing.T) {
	t.Helper()
	if err := fs.mux.GoAway(); err != nil && !errors.Is(err, yamux.ErrSessionShutdown) {
		t.Error(err)
	}
}

// statusLog records a Session's statuses.
type statusLog struct {
	mu   sync.Mutex
	list []client.Status
	more chan struct{}
}

func newStatusLog() *statusLog { return &statusLog{more: make(chan struct{}, 1)} }

func (l *statusLog) add(st client.Status) {
	l.mu.Lock()
	l.list = append(l.list, st)
	l.mu.Unlock()
	select {
	case l.more <- struct{}{}:
	default:
	}
}

// wait returns the statuses once there are at least n.
func (l *statusLog) wait(t *testing.T, n int) []client.Status {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		list := append([]client.Status(nil), l.list...)
		l.mu.Unlock()
		if len(list) >= n {
			return list
		}
		select {
		case <-l.more:
		case <-deadline:
			t.Fatalf("%d statuses, want %d: %v", len(list), n, list)
		}
	}
}

// behindBalancer connects a Session to a load balancer's URL that sends
// the first tunnel to a and every later one to b. The backoff is an hour:
// a reconnection that waited for it would never come within a test.
func behindBalancer(t *testing.T, a, b *fakeGateway) (*client.Session, *statusLog, *atomic.Int32) {
	t.Helper()
	const lb = "ws://balancer.invalid/tunnel"
	var dials atomic.Int32
	log := newStatusLog()
	s, err := client.Connect(context.Background(), lb, &client.Options{
		MinBackoff: time.Hour,
		OnStatus:   log.add,
		Dialer: func(ctx context.Context, url string) (net.Conn, error) {
			if url != lb {
				t.Errorf("dialed %s, want the balancer's URL", url)
			}
			g := b
			if dials.Add(1) == 1 {
				g = a
			}
			c, _, err := tunnel.Dial(ctx, g.url, &tunnel.DialOptions{Subprotocols: []string{tunnel.Subprotocol}})
			if err != nil {
				return nil, err
			}
			return c.StreamConn(), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, log, &dials
}

// drainSetup starts gateways A and B behind one balancer and returns a
// Session on it and the tunnel it has on A.
func drainSetup(t *testing.T, blobA []byte) (*client.Session, *statusLog, *atomic.Int32, *fakeSession) {
	t.Helper()
	a := startFake(t, "A", blobA)
	b := startFake(t, "B", nil)
	s, log, dials := behindBalancer(t, a, b)
	return s, log, dials, a.next(t)
}

// checkDials checks that the balancer was dialed twice: A, then B once.
func checkDials(t *testing.T, dials *atomic.Int32) {
	t.Helper()
	if n := dials.Load(); n != 2 {
		t.Fatalf("%d tunnels dialed, want 2", n)
	}
}

// dialName dials the "name" service and returns the name of the gateway
// that served it.
func dialName(t *testing.T, s *client.Session) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := s.Dial(ctx, "name")
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the name: %v", err)
	}
	return string(got)
}

// checkReconnected checks that the statuses are exactly: up on the first
// gateway, one reconnection for the reason that matches, up on the next,
// and closed; no failed attempt, no second reconnection.
func checkReconnected(t *testing.T, list []client.Status, reason func(error) bool) {
	t.Helper()
	if len(list) != 4 || list[0].State != client.Connected || list[1].State != client.Reconnecting ||
		!reason(list[1].Err) || list[2].State != client.Connected || list[3].State != client.Closed || list[3].Err != nil {
		t.Fatalf("statuses %v", list)
	}
}

func isDraining(err error) bool { return errors.Is(err, client.ErrGatewayDraining) }

func isGoingAway(err error) bool {
	var te *client.TunnelClosedError
	return errors.As(err, &te) && te.Code == uint16(tunnel.StatusGoingAway) && te.Remote
}

// TestGoAwayMidTransfer: the gateway drains (GoAway) while a stream is
// in the middle of 4 MiB. A new Dial succeeds on the next gateway at
// once, the old stream's bytes arrive whole, and the old tunnel is closed
// with 1000 once that stream has ended, not before.
func TestGoAwayMidTransfer(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the gateways stop
	blob := make([]byte, 4<<20)
	rng := rand.NewChaCha8([32]byte{'f', 'e', 'r', 'r', 'y'})
	_, _ = rng.Read(blob)
	s, log, dials, oldA := drainSetup(t, blob)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := s.Dial(ctx, "blob")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(h, c, 512<<10); err != nil {
		t.Fatal(err)
	}
	// Mid-transfer: A waits for window with most of the blob unsent.
	oldA.goAway(t)
	if got := dialName(t, s); got != "B" {
		t.Fatalf("the Dial after GoAway reached gateway %q", got)
	}
	if _, err := io.Copy(h, c); err != nil {
		t.Fatalf("the stream on the draining tunnel: %v", err)
	}
	if want := sha256.Sum256(blob); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("the stream on the draining tunnel lost or changed bytes")
	}
	select {
	case <-oldA.conn.Done():
		t.Fatalf("the draining tunnel closed before its stream did: %v", oldA.conn.Err())
	default:
	}
	c.Close()
	if ce := oldA.ended(t); ce.Code != tunnel.StatusNormalClosure || ce.Local {
		t.Fatalf("the drained tunnel ended with %v, want the client's 1000", ce)
	}
	if got := dialName(t, s); got != "B" {
		t.Fatalf("a later Dial reached gateway %q", got)
	}
	s.Close()
	checkReconnected(t, log.wait(t, 4), isDraining)
	checkDials(t, dials)
}

// TestDrainIdleSession: an idle tunnel that the gateway drains (GoAway,
// close with 1001, or both in that order, as a gateway that drains does)
// is replaced at once: the next Dial succeeds on the next gateway
// although the backoff is an hour, with one reconnection and one new
// dial.
func TestDrainIdleSession(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the gateways stop
	goingAway := func(_ *testing.T, fs *fakeSession) {
		_ = fs.conn.Close(tunnel.StatusGoingAway, "the gateway is draining")
	}
	goAway := func(t *testing.T, fs *fakeSession) { fs.goAway(t) }
	for _, tt := range []struct {
		name   string
		drain  func(*testing.T, *fakeSession)
		reason func(error) bool
		// the close code of the old tunnel: 1001 from the gateway or 1000
		// from the client; 0 for either (they race).
		code tunnel.StatusCode
	}{
		{"close 1001", goingAway, isGoingAway, tunnel.StatusGoingAway},
		{"GoAway", goAway, isDraining, tunnel.StatusNormalClosure},
		{"GoAway then close 1001", func(t *testing.T, fs *fakeSession) { goAway(t, fs); goingAway(t, fs) },
			func(err error) bool { return isDraining(err) || isGoingAway(err) }, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, log, dials, oldA := drainSetup(t, nil)
			if got := dialName(t, s); got != "A" {
				t.Fatalf("first Dial reached %q", got)
			}
			tt.drain(t, oldA)
			if got := dialName(t, s); got != "B" {
				t.Fatalf("the Dial after the drain reached gateway %q", got)
			}
			ce := oldA.ended(t)
			if tt.code != 0 && ce.Code != tt.code {
				t.Fatalf("the old tunnel ended with %v, want %d", ce, tt.code)
			}
			s.Close()
			checkReconnected(t, log.wait(t, 4), tt.reason)
			checkDials(t, dials)
		})
	}
}

// TestConcurrentDialsShareReconnect: Dials made together as the gateway
// drains all succeed on the one new tunnel.
func TestConcurrentDialsShareReconnect(t *testing.T) {
	t.Parallel()
	s, log, dials, oldA := drainSetup(t, nil)
	oldA.goAway(t)
	var wg sync.WaitGroup
	names := make([]string, 8)
	for i := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := s.Dial(ctx, "name")
			if err != nil {
				t.Errorf("Dial %d: %v", i, err)
				return
			}
			defer c.Close()
			got, _ := io.ReadAll(c)
			names[i] = string(got)
		}()
	}
	wg.Wait()
	for i, n := range names {
		if n != "B" {
			t.Errorf("Dial %d reached %q", i, n)
		}
	}
	checkDials(t, dials)
	if list := log.wait(t, 3); len(list) != 3 {
		t.Fatalf("statuses %v", list)
	}
}

// TestGoAwaySeenWithoutDial: the GoAway is noticed as it arrives, not at
// the next Dial: the Session is up on the next gateway, and has closed
// the idle old tunnel, before anything is dialed.
func TestGoAwaySeenWithoutDial(t *testing.T) {
	t.Parallel()
	s, log, dials, oldA := drainSetup(t, nil)
	oldA.goAway(t)
	if list := log.wait(t, 3); list[2].State != client.Connected || !isDraining(list[1].Err) {
		t.Fatalf("statuses %v", list)
	}
	if ce := oldA.ended(t); ce.Code != tunnel.StatusNormalClosure || ce.Local {
		t.Fatalf("the idle drained tunnel ended with %v, want the client's 1000", ce)
	}
	if got := dialName(t, s); got != "B" {
		t.Fatalf("Dial reached %q", got)
	}
	checkDials(t, dials)
}
