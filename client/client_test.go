//go:build !js

package client_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/gateway"
	"github.com/ferrygw/ferry/gateway/config"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startGateway runs the embedded default gateway (a public echo service)
// on 127.0.0.1:0 and returns its tunnel URL and a stop function.
func startGateway(t *testing.T, toml string) (string, func()) {
	t.Helper()
	cfg := config.Default()
	if toml != "" {
		var err error
		if cfg, err = config.Parse("test.toml", []byte(toml)); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := gateway.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}
	t.Cleanup(stop)
	return "ws://" + ln.Addr().String() + "/tunnel", stop
}

// connect opens a session to url, closed when the test ends.
func connect(t *testing.T, url string) *client.Session {
	t.Helper()
	s, err := client.Connect(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConnectErrors(t *testing.T) {
	t.Parallel()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	_, err := client.Connect(context.Background(), "ws://"+closed+"/tunnel", nil)
	var re *client.RefusedError
	if err == nil || errors.As(err, &re) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("unreachable gateway: %v", err)
	}
	url, _ := startGateway(t, "[services.db]\nbackend = \"127.0.0.1:1\"\n[[tokens]]\nsha256 = \""+strings.Repeat("ab", 32)+"\"\nservices = [\"db\"]\n")
	_, err = client.Connect(context.Background(), url, nil)
	if !errors.As(err, &re) || re.Status != 401 {
		t.Fatalf("gateway that needs a token: %v", err)
	}
	if _, err := client.Connect(context.Background(), "http://example.invalid/", nil); err == nil {
		t.Fatal("Connect accepted an http:// URL")
	}
}

// TestDialWaitsForReconnect: while the gateway is down, Dial waits up to
// its context and then says why; after Close it returns ErrClosed.
func TestDialWaitsForReconnect(t *testing.T) {
	t.Parallel()
	url, stop := startGateway(t, "")
	s, err := client.Connect(context.Background(), url, &client.Options{MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = s.Dial(ctx, "echo")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial with the gateway down: %v", err)
	}
	s.Close()
	if _, err := s.Dial(context.Background(), "echo"); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Dial after Close: %v", err)
	}
}

// TestForward forwards a local listener to the echo service; a client of
// the local port half-closes and reads everything back.
func TestForward(t *testing.T) {
	t.Parallel()
	url, _ := startGateway(t, "")
	s := connect(t, url)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Forward(ctx, ln, "echo", nil) }()
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		msg := strings.Repeat("forwarded bytes ", 1000)
		go func() {
			io.WriteString(c, msg)
			c.(*net.TCPConn).CloseWrite()
		}()
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != msg {
			t.Fatalf("round %d: %d bytes back, %v", i, len(got), err)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Forward after cancel: %v", err)
	}
}

// TestRevokedTokenStopsReconnecting: when the gateway comes back without
// the session's token, the client stops retrying, says why, and dials fail
// with the refusal instead of waiting.
func TestRevokedTokenStopsReconnecting(t *testing.T) {
	t.Parallel()
	const token = "revoked-token-0123456789abcdefghijklmnopqrs"
	withToken := fmt.Sprintf("[services.db]\nbackend = \"127.0.0.1:1\"\n[[tokens]]\nsha256 = \"%x\"\nservices = [\"db\"]\n", sha256.Sum256([]byte(token)))
	url, stop := startGateway(t, withToken)
	statuses := make(chan client.Status, 16)
	s, err := client.Connect(context.Background(), url, &client.Options{
		Token: token, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		OnStatus: func(st client.Status) {
			select {
			case statuses <- st:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	<-statuses // connected
	stop()
	// The same address, now without the token.
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/tunnel")
	cfg, err := config.Parse("revoked.toml", []byte(fmt.Sprintf("[services.db]\nbackend = \"127.0.0.1:1\"\n[[tokens]]\nsha256 = \"%s\"\nservices = [\"db\"]\n", strings.Repeat("ab", 32))))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := gateway.New(cfg, nil)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(ctx)
		cancel()
		<-done
	}()
	for st := range statuses {
		if st.State == client.Closed {
			var re *client.RefusedError
			if !errors.As(st.Err, &re) || re.Status != 401 {
				t.Fatalf("closed with %v, want the 401 refusal", st.Err)
			}
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.Dial(ctx, "db"); err == nil || !strings.Contains(err.Error(), "refused the tunnel") || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial after the refusal: %v", err)
	}
}

// TestCloseUnblocksRead: closing a stream makes a Read blocked on it in
// another goroutine return net.ErrClosed at once, and later Reads too.
func TestCloseUnblocksRead(t *testing.T) {
	t.Parallel()
	url, _ := startGateway(t, "")
	s := connect(t, url)
	c, err := s.Dial(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		_, err := c.Read(make([]byte, 16)) // nothing will come
		readErr <- err
	}()
	<-started
	closed := time.Now()
	c.Close()
	select {
	case err := <-readErr:
		// The Read may also not have begun before Close: either way it
		// must report the close.
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("blocked Read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Close left a Read blocked")
	}
	if d := time.Since(closed); d > time.Second {
		t.Errorf("the blocked Read took %s to return", d)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
}
