package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/internal/testnet"
)

// waitFirehoseEnd waits up to within for the firehose's connection to
// end, after what (the action its caller has just taken).
func waitFirehoseEnd(t *testing.T, ended <-chan error, within time.Duration, what string) {
	t.Helper()
	start := time.Now()
	select {
	case err := <-ended:
		t.Logf("the backend's connection ended %v after %s: %v", time.Since(start), what, err)
	case <-time.After(within):
		t.Fatalf("the backend still sends %v after %s (a close's drain lasts 5 s)", within, what)
	}
}

// TestCloseEndsFirehose: a client that closes a stream whose backend is
// still sending (a download it gave up on) ends the backend's connection
// once its drain is over, rather than leaving the gateway (and the
// exposer) and the backend blocked on the stream's full window for as
// long as the tunnel lives; for a configured backend and for an exposed
// one.
func TestCloseEndsFirehose(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		start func(t *testing.T, addr string) (url, service, token string)
	}{
		{"configured", func(t *testing.T, addr string) (string, string, string) {
			g := startGateway(t, baseConfig(fmt.Sprintf("[services.firehose]\nbackend = %q\npublic = true\n", addr)))
			return g.url, "firehose", ""
		}},
		{"exposed", func(t *testing.T, addr string) (string, string, string) {
			g := startGateway(t, exposeConfig(""))
			expose(t, g.url, addr, "firehose")
			return g.url, "laptop", "user-token"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr, ended := testnet.Firehose(t)
			url, service, token := tt.start(t, addr)
			s := connect(t, url, &client.Options{Token: token})
			c, err := s.Dial(context.Background(), service)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, make([]byte, 1<<20)); err != nil {
				t.Fatal(err)
			}
			c.Close()
			waitFirehoseEnd(t, ended, 8*time.Second, "the client's Close")
		})
	}
}

// TestExposedCutOffUpload: when a dialer's tunnel dies in the middle of
// an upload to an exposed service, the exposer's local connection is
// reset, never ended with a clean end of file, so the local service does
// not take the cut-off upload for a whole one (as a configured TCP
// backend is reset).
func TestExposedCutOffUpload(t *testing.T) {
	t.Parallel()
	type end struct {
		n   int64
		err error
	}
	ended := make(chan end, 1)
	got := make(chan struct{})
	addr := testnet.ServeOnce(t, func(c net.Conn) {
		defer c.Close()
		n, err := io.CopyN(io.Discard, c, 1<<20)
		close(got)
		if err == nil {
			var m int64
			m, err = io.Copy(io.Discard, c)
			n += m
		}
		ended <- end{n, err}
	})
	g := startGateway(t, exposeConfig(""))
	expose(t, g.url, addr, "upload")
	s, err := client.Connect(context.Background(), g.url, &client.Options{Token: "user-token", MinBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.Dial(context.Background(), "laptop")
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	go func() {
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	<-got
	s.Close() // the dialer's tunnel ends mid-upload
	select {
	case e := <-ended:
		if e.err == nil {
			t.Fatalf("the local service read a clean end of file after %d bytes of a cut-off upload", e.n)
		}
		t.Logf("the local service's read ended after %d bytes: %v", e.n, e.err)
	case <-time.After(10 * time.Second):
		t.Fatal("the local connection still open 10 s after the dialer's tunnel ended")
	}
}

// TestForwardResetEndsFirehose: when the local connection of a forward
// is reset while its backend sends, the backend's connection is reset at
// once, with no drain.
func TestForwardResetEndsFirehose(t *testing.T) {
	t.Parallel()
	addr, ended := testnet.Firehose(t)
	g := startGateway(t, baseConfig(fmt.Sprintf("[services.firehose]\nbackend = %q\npublic = true\n", addr)))
	s := connect(t, g.url, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	fwd := make(chan error, 1)
	go func() { fwd <- s.Forward(ctx, ln, "firehose", func(error) {}) }()
	defer func() {
		cancel()
		<-fwd
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).SetLinger(0)
	c.Close() // a reset, with bytes unread
	waitFirehoseEnd(t, ended, 3*time.Second, "the forward's local connection was reset")
}

// TestExposedLocalReset: when the exposer's local service resets its
// connection in the middle of a download, the dialer reads what arrived
// and then an error, never a clean end of file.
func TestExposedLocalReset(t *testing.T) {
	t.Parallel()
	addr := testnet.ServeOnce(t, func(c net.Conn) {
		// The dialer's byte: the stream is connected end to end.
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			c.Close()
			return
		}
		_, _ = c.Write(make([]byte, 1<<20))
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
	})
	g := startGateway(t, exposeConfig(""))
	expose(t, g.url, addr, "reset")
	s := connect(t, g.url, &client.Options{Token: "user-token"})
	c, err := s.Dial(context.Background(), "laptop")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("g")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, c)
	if err == nil {
		t.Fatalf("the dialer read a clean end of file after %d bytes of a download the local service reset", n)
	}
	t.Logf("the dialer read %d bytes, then: %v", n, err)
}
