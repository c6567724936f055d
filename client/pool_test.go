//go:build !js

package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/tunnel"
)

// waitStats waits up to 10 s for the Session's counts to satisfy ok.
func waitStats(t *testing.T, s *client.Session, what string, ok func(client.Stats) bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for !ok(s.Stats()) {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: stats %+v after 10s", what, s.Stats())
		}
	}
}

// startLimitedEcho starts a gateway with the builtin echo service and the
// given [limits] lines, and returns its tunnel URL.
func startLimitedEcho(t *testing.T, limits string) string {
	t.Helper()
	url, _ := startGateway(t, "[limits]\n"+limits+"\n\n[services.echo]\nbackend = \"builtin:echo\"\npublic = true\n")
	return url
}

// TestForwardPastStreamLimit: 300 concurrent connections through one
// Forward to a gateway that allows 256 streams per session all echo
// intact, on a second tunnel the Session opens for them; once they are
// closed the Session is back to one tunnel.
func TestForwardPastStreamLimit(t *testing.T) {
	t.Parallel()
	const n = 300
	url := startLimitedEcho(t, "max_streams_per_session = 256\nhandshakes_per_second_per_ip = 1000")
	limited := make(chan *client.SessionLimitError, 1)
	s, err := client.Connect(context.Background(), url, &client.Options{OnLimit: func(e *client.SessionLimitError) { limited <- e }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	fwd := make(chan error, 1)
	go func() { fwd <- s.Forward(ctx, ln, "echo", func(err error) { t.Errorf("Forward: %v", err) }) }()
	defer func() {
		cancel()
		<-fwd
	}()

	var echoed, check sync.WaitGroup
	echoed.Add(n)
	check.Add(1)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			errs <- func() error {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					echoed.Done()
					return err
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(60 * time.Second))
				msg := make([]byte, 32<<10)
				rand.Read(msg)
				go c.Write(msg)
				got := make([]byte, len(msg))
				_, err = io.ReadFull(c, got)
				echoed.Done()
				if err != nil {
					return err
				}
				if sha256.Sum256(got) != sha256.Sum256(msg) {
					return errors.New("the echo differs from what was sent")
				}
				// Hold the stream open until all n are: n at once.
				check.Wait()
				return nil
			}()
		}()
	}
	echoed.Wait()
	st := s.Stats()
	check.Done()
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if st.Tunnels < 2 || st.Streams < n {
		t.Errorf("with %d streams open: %+v, want 2 tunnels or more", n, st)
	}
	select {
	case e := <-limited:
		t.Errorf("OnLimit: %v", e)
	default:
	}
	waitStats(t, s, "after the connections closed", func(st client.Stats) bool { return st.Tunnels == 1 && st.Streams == 0 })
}

// TestSessionLimitReportedOnce: when the gateway refuses another tunnel
// (max_sessions_per_ip), the opens past the stream limit get status 5 and
// OnLimit is told once, with the count.
func TestSessionLimitReportedOnce(t *testing.T) {
	t.Parallel()
	url := startLimitedEcho(t, "max_streams_per_session = 2\nmax_sessions_per_ip = 1")
	var mu sync.Mutex
	var reports []*client.SessionLimitError
	s, err := client.Connect(context.Background(), url, &client.Options{OnLimit: func(e *client.SessionLimitError) {
		mu.Lock()
		reports = append(reports, e)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 2; i++ {
		c, err := s.Dial(ctx, "echo")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	for i := 0; i < 3; i++ {
		_, err := s.Dial(ctx, "echo")
		var oe *tunnel.OpenError
		if !errors.As(err, &oe) || oe.Status != tunnel.OpenLimit {
			t.Fatalf("Dial past the limit: %v, want status 5", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reports) != 1 || reports[0].Tunnels != 1 {
		t.Fatalf("OnLimit reports %v, want one with 1 tunnel", reports)
	}
	var re *client.RefusedError
	if !errors.As(reports[0], &re) || re.Status != 429 {
		t.Errorf("the report %v does not carry the 429", reports[0])
	}
	if st := s.Stats(); st.Tunnels != 1 {
		t.Errorf("stats %+v, want 1 tunnel", st)
	}
}

// TestBusyBacksOff: status 9 (busy) is retried after a wait, on the same
// tunnel: the gateway never sees a second one.
func TestBusyBacksOff(t *testing.T) {
	t.Parallel()
	g := startFake(t, "a", nil)
	s, err := client.Connect(context.Background(), g.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	_, err = s.Dial(context.Background(), "busy")
	var oe *tunnel.OpenError
	if !errors.As(err, &oe) || oe.Status != tunnel.OpenBusy {
		t.Fatalf("Dial busy: %v", err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("Dial gave up on busy after %s, want backoff waits", took)
	}
	g.next(t)
	select {
	case fs := <-g.sessions:
		_ = fs
		t.Errorf("a second tunnel for status 9")
	default:
	}
	c, err := s.Dial(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "x")
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || !bytes.Equal(b, []byte("x")) {
		t.Errorf("echo after busy: %q, %v", b, err)
	}
}

// TestExtraTunnelServesWhileReconnecting: when the current tunnel dies
// and its reconnection has not come back, a Dial opens its stream on an
// extra tunnel that is still up and has room, rather than wait for the
// reconnection.
func TestExtraTunnelServesWhileReconnecting(t *testing.T) {
	t.Parallel()
	url := startLimitedEcho(t, "max_streams_per_session = 2\nhandshakes_per_second_per_ip = 1000")
	var mu sync.Mutex
	var tunnels []*tunnel.Conn
	hold := make(chan struct{}) // the third tunnel, the reconnection, waits for it
	defer close(hold)
	s, err := client.Connect(context.Background(), url, &client.Options{
		MinBackoff: time.Millisecond,
		Dialer: func(ctx context.Context, u string) (net.Conn, error) {
			mu.Lock()
			n := len(tunnels)
			mu.Unlock()
			if n >= 2 {
				select {
				case <-hold:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			c, _, err := tunnel.Dial(ctx, u, &tunnel.DialOptions{Subprotocols: []string{tunnel.Subprotocol}})
			if err != nil {
				return nil, err
			}
			mu.Lock()
			tunnels = append(tunnels, c)
			mu.Unlock()
			return c.StreamConn(), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	echo := func(c net.Conn, msg string) error {
		if _, err := io.WriteString(c, msg); err != nil {
			return err
		}
		b := make([]byte, len(msg))
		if _, err := io.ReadFull(c, b); err != nil {
			return err
		}
		if string(b) != msg {
			return errors.New("echoed " + string(b))
		}
		return nil
	}
	// Two streams fill the first tunnel; the third is refused there
	// (status 5) and opens an extra tunnel.
	var held []net.Conn
	for i := 0; i < 3; i++ {
		c, err := s.Dial(ctx, "echo")
		if err != nil {
			t.Fatalf("Dial %d: %v", i, err)
		}
		defer c.Close()
		held = append(held, c)
	}
	if st := s.Stats(); st.Tunnels != 2 || st.Streams != 3 {
		t.Fatalf("stats %+v, want 2 tunnels and 3 streams", st)
	}
	mu.Lock()
	first := tunnels[0]
	mu.Unlock()
	first.CloseNow() // the current tunnel dies; its reconnection waits on hold
	waitStats(t, s, "the first tunnel's streams end", func(st client.Stats) bool { return st.Streams == 1 })

	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	c, err := s.Dial(short, "echo")
	if err != nil {
		t.Fatalf("Dial while the current tunnel reconnects: %v, want the extra tunnel's room", err)
	}
	defer c.Close()
	if err := echo(c, "through the extra tunnel"); err != nil {
		t.Fatal(err)
	}
	if err := echo(held[2], "the extra tunnel's first stream"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	n := len(tunnels)
	mu.Unlock()
	if n != 2 {
		t.Errorf("%d tunnels dialed, want 2: the reconnection was held", n)
	}
}
