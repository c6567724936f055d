package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/gateway"
	"github.com/ferrygw/ferry/gateway/config"
)

// TestGatewayRestart stops the gateway under a live session, starts a new
// one on the same address, and checks that the client reconnects and that
// new Dials succeed; a Dial made while the gateway is down waits for it.
func TestGatewayRestart(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse("test.toml", []byte(baseConfig("")))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
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
	states := make(chan client.State, 16)
	s := connect(t, "ws://"+addr+"/tunnel", &client.Options{
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		OnStatus: func(st client.Status) {
			select {
			case states <- st.State:
			default:
			}
		},
	})
	<-states // connected
	roundTripEcho(t, s)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	srv.Shutdown(ctx)
	cancel()
	<-done
	if st := <-states; st != client.Reconnecting {
		t.Fatalf("state after the gateway stopped: %v", st)
	}
	// A Dial while the gateway is down waits for the new one.
	dialed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := s.Dial(ctx, "echo")
		if err == nil {
			c.Close()
		}
		dialed <- err
	}()
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	srv2, done2 := run(ln2)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv2.Shutdown(ctx)
		cancel()
		<-done2
	}()
	if err := <-dialed; err != nil {
		t.Fatalf("Dial across the restart: %v", err)
	}
	roundTripEcho(t, s)
}

func roundTripEcho(t *testing.T, s *client.Session) {
	t.Helper()
	c, err := s.Dial(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "ping" {
		t.Fatalf("echo: %q, %v", got, err)
	}
}

// TestSlowReader: a client that stops reading stops the backend. The
// backend can push only about the yamux window plus socket buffers before
// its writes block, and the gateway's memory stays bounded meanwhile.
func TestSlowReader(t *testing.T) {
	var written atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	accepted := make(chan net.Conn, 1)
	defer func() {
		ln.Close()
		// The backend writes forever: end it, or it waits on the
		// half-closed stream until yamux's close timeout.
		select {
		case c := <-accepted:
			c.Close()
		default:
		}
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		accepted <- c
		chunk := make([]byte, 64<<10)
		for {
			n, err := c.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	g := startGateway(t, baseConfig(fmt.Sprintf("[services.firehose]\nbackend = %q\npublic = true\n", ln.Addr())))
	s := connect(t, g.url, nil)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	c, err := s.Dial(context.Background(), "firehose")
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the backend is stuck: its count stops moving.
	last := int64(-1)
	for still := 0; still < 5; {
		time.Sleep(50 * time.Millisecond)
		if n := written.Load(); n == last {
			still++
		} else {
			last, still = n, 0
		}
	}
	runtime.GC()
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	growth := int64(during.HeapInuse) - int64(before.HeapInuse)
	t.Logf("backend wrote %d KiB before blocking; heap grew %d KiB", last>>10, growth>>10)
	if last > 24<<20 {
		t.Errorf("backend wrote %d MiB to a client that reads nothing: no backpressure", last>>20)
	}
	if growth > 16<<20 {
		t.Errorf("heap grew %d MiB while the reader stalled", growth>>20)
	}
	// Reading resumes the flow.
	buf := make([]byte, 1<<20)
	var got int64
	for got < last+(4<<20) {
		n, err := c.Read(buf)
		got += int64(n)
		if err != nil {
			t.Fatalf("after %d bytes: %v", got, err)
		}
	}
	c.Close()
}

// TestShutdownDrains: Shutdown lets an open stream finish, refuses new
// ones, and then closes the tunnel with 1001.
func TestShutdownDrains(t *testing.T) {
	t.Parallel()
	g := startGateway(t, baseConfig(""))
	srv, done := g.srv, g.done
	s := connect(t, g.url, &client.Options{MinBackoff: time.Hour})
	c, err := s.Dial(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	// The open stream still works while draining.
	c.Write([]byte("still here"))
	buf := make([]byte, 10)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "still here" {
		t.Fatalf("open stream during drain: %q, %v", buf, err)
	}
	c.Close()
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	<-done
	if srv.Sessions() != 0 {
		t.Fatalf("%d sessions after shutdown", srv.Sessions())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := s.Dial(ctx, "echo"); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial after shutdown: %v", err)
	}
}

// TestIdleTimeout: a session without streams for idle_timeout is closed;
// one with an open stream is not.
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	g := startGateway(t, baseConfig("[server]\nidle_timeout = \"100ms\"\n"))
	states := make(chan client.State, 8)
	s := connect(t, g.url, &client.Options{MinBackoff: time.Hour, OnStatus: func(st client.Status) {
		select {
		case states <- st.State:
		default:
		}
	}})
	<-states // connected
	c, err := s.Dial(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	// The open stream keeps the session alive past the timeout.
	time.Sleep(300 * time.Millisecond)
	c.Write([]byte("x"))
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("stream after idle_timeout: %v", err)
	}
	c.Close()
	if st := <-states; st != client.Reconnecting {
		t.Fatalf("state after idling: %v", st)
	}
}

func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	g := startGateway(t, baseConfig(""))
	s := connect(t, g.url, nil)
	roundTripEcho(t, s)
	srv := httptest.NewServer(g.srv.AdminHandler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz = %d %q", code, body)
	}
	_, body := get("/metrics")
	for _, want := range []string{"ferry_sessions_open 1\n", "ferry_sessions_total 1\n", "ferry_streams_total 1\n", `ferry_refusals_total{reason="auth"} 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}

// TestTunnelLostIsNotEOF: when the tunnel dies under an open stream, the
// client's Read says so instead of reporting a clean end of file, and the
// backend's connection is reset rather than half-closed.
func TestTunnelLostIsNotEOF(t *testing.T) {
	t.Parallel()
	backendErr := make(chan error, 1)
	backend := tcpBackend(t, func(c *net.TCPConn) {
		c.Write([]byte("partial"))
		_, err := io.ReadAll(c) // a clean EOF here would be a lie
		backendErr <- err
	})
	g := startGateway(t, baseConfig(fmt.Sprintf("[services.slow]\nbackend = %q\npublic = true\n", backend)))
	srv, done := g.srv, g.done
	s := connect(t, g.url, &client.Options{MinBackoff: time.Hour})
	c, err := s.Dial(context.Background(), "slow")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 7)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	// Shut down with no time to drain: the tunnel closes under the stream.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	srv.Shutdown(ctx)
	<-done
	if _, err := c.Read(buf); !errors.Is(err, client.ErrTunnelLost) {
		t.Fatalf("Read after the tunnel died: %v, want ErrTunnelLost", err)
	}
	if err := <-backendErr; err == nil {
		t.Fatal("the backend saw a clean end of file")
	}
}

// TestIdleTimerAfterAccept: the idle timer firing while a stream is
// accepted by yamux but not yet counted by the session must not close the
// session under it. Before the fix the session was closed ("idle for")
// and the stream's open failed.
func TestIdleTimerAfterAccept(t *testing.T) {
	t.Parallel()
	const idle = 50 * time.Millisecond
	// The window between accept and count, held open past the timeout:
	// waiting for a timer to fire, not for readiness.
	g := startGatewayWith(t, baseConfig("[server]\nidle_timeout = \"50ms\"\n"), nil, func(srv *gateway.Server, ln net.Listener) net.Listener {
		srv.SetAfterAccept(func() { <-time.After(4 * idle) })
		return ln
	})
	s := connect(t, g.url, &client.Options{MinBackoff: time.Hour})
	// Let the session sit idle for most of the timeout first.
	<-time.After(idle / 2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := s.Dial(ctx, "echo")
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("stream opened across the idle timeout: %v", err)
	}
}
