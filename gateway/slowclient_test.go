package gateway_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrygw/ferry/gateway"
)

// watchedListener gives every accepted connection a small send buffer
// (so that a client that reads nothing stalls the gateway's writes after
// some KiB, not after the megabytes a loopback socket buffers on its own)
// and reports on closed when the gateway closes one.
type watchedListener struct {
	net.Listener
	closed chan struct{}
}

func (l *watchedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(16 << 10)
	}
	return &watchedConn{Conn: c, closed: l.closed}, nil
}

type watchedConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *watchedConn) Close() error {
	c.once.Do(func() { c.closed <- struct{}{} })
	return c.Conn.Close()
}

func watch(ln net.Listener) *watchedListener {
	return &watchedListener{Listener: ln, closed: make(chan struct{}, 16)}
}

// dialRaw opens a TCP connection to addr with a small receive buffer.
func dialRaw(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := c.(*net.TCPConn)
	tc.SetReadBuffer(4 << 10)
	t.Cleanup(func() { tc.Close() })
	return tc
}

// TestSlowAssetReader: a client that asks for client.wasm and reads
// nothing has its connection closed once the response's write deadline
// passes, long before it could have been sent.
func TestSlowAssetReader(t *testing.T) {
	noLeaks(t)
	const floor = 300 * time.Millisecond
	gateway.SetHTTPBounds(t, time.Minute, floor, 1e12) // the floor alone
	var wl *watchedListener
	_, addr := serveOn(t, baseConfig(""), func(_ *gateway.Server, ln net.Listener) net.Listener {
		wl = watch(ln)
		return wl
	})
	c := dialRaw(t, addr)
	start := time.Now()
	io.WriteString(c, "GET /ferry/client.wasm HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\n\r\n")
	select {
	case <-wl.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the gateway still holds the connection of a client that reads nothing")
	}
	if d := time.Since(start); d < floor {
		t.Errorf("closed after %v, before the deadline of %v", d, floor)
	}
	// What was on its way arrives, then the end: far less than the asset.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if errors.Is(err, os.ErrDeadlineExceeded) || n >= resp.ContentLength {
		t.Fatalf("read %d of %d bytes (%v); want the connection cut short", n, resp.ContentLength, err)
	}
	t.Logf("the client got %d of %d bytes before the connection was closed", n, resp.ContentLength)
}

// TestAssetDeadlineCleared: the write deadline of an asset response does
// not stay on a keep-alive connection: a request after it has passed is
// answered, and a tunnel on a connection is never bounded by it.
func TestAssetDeadlineCleared(t *testing.T) {
	noLeaks(t)
	const floor = 100 * time.Millisecond
	gateway.SetHTTPBounds(t, time.Minute, floor, 1e12)
	g := startGateway(t, baseConfig(""))
	addr := strings.TrimSuffix(strings.TrimPrefix(g.url, "ws://"), "/tunnel")
	c := dialRaw(t, addr)
	br := bufio.NewReader(c)
	get := func(path string) int {
		t.Helper()
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatalf("GET %s: body: %v", path, err)
		}
		return resp.StatusCode
	}
	for _, path := range []string{"/ferry/ferry.js", "/"} {
		if st := get(path); st != http.StatusOK {
			t.Fatalf("GET %s: %d", path, st)
		}
		// Wait past the response's deadline: the point of the test.
		time.Sleep(3 * floor)
		if st := get("/healthz"); st != http.StatusOK {
			t.Fatalf("GET /healthz after %s: %d", path, st)
		}
	}
	// A tunnel outlives the write bound of pages.
	s := connect(t, g.url, nil)
	time.Sleep(3 * floor)
	roundTripEcho(t, s)
}

// TestIdleKeepAlive: a keep-alive connection that sends no next request
// is closed after the idle timeout.
func TestIdleKeepAlive(t *testing.T) {
	noLeaks(t)
	gateway.SetHTTPBounds(t, 200*time.Millisecond, time.Minute, 32<<10)
	g := startGateway(t, baseConfig(""))
	addr := strings.TrimSuffix(strings.TrimPrefix(g.url, "ws://"), "/tunnel")
	c := dialRaw(t, addr)
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.Close {
		t.Fatal("the gateway did not keep the connection alive")
	}
	start := time.Now()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("an idle keep-alive connection: %v, want EOF once the gateway closes it", err)
	}
	t.Logf("closed after %v idle", time.Since(start).Round(time.Millisecond))
}
