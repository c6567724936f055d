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

// TestForwardPastStreamLimit: 300 concurrent connections through one
// Forward to a gateway that allows 256 streams per session all echo
// intact, on a second tunnel the Session opens for them; once they are
// closed the Session is back to one tunnel.
func TestForwardPastStreamLimit(t *testing.T) {
	t.Parallel()
	const n = 300
	url, _ := startGateway(t, `
[limits]
max_streams_per_session = 256
handshakes_per_second_per_ip = 1000

[services.echo]
backend = "builtin:echo"
public = true
`)
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
	url, _ := startGateway(t, `
[limits]
max_streams_per_session = 2
max_sessions_per_ip = 1

[services.echo]
backend = "builtin:echo"
public = true
`)
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
