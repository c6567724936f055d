package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/gateway"
	"github.com/ferrygw/ferry/tunnel"
	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/yamux"
)

// quietBackend reads each connection to end of file, reports it on eof,
// then stays quiet without closing until the connection is closed from
// the other side; it reports how that ended on gone.
func quietBackend(t *testing.T) (addr string, eof, gone chan error) {
	eof, gone = make(chan error, 4), make(chan error, 4)
	addr = tcpBackend(t, func(c *net.TCPConn) {
		_, err := io.Copy(io.Discard, c)
		eof <- err
		// Quiet: no write, no close. Writing once the gateway has let go
		// tells how it let go.
		for {
			if _, err := c.Write([]byte("x")); err != nil {
				gone <- err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	return addr, eof, gone
}

// rawMux opens a tunnel as a client without Ferry's client package, so a
// test can break it as it likes.
func rawMux(t *testing.T, url string) (*tunnel.Conn, *yamux.Session) {
	t.Helper()
	c, _, err := tunnel.Dial(context.Background(), url, &tunnel.DialOptions{Subprotocols: []string{tunnel.Subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	mux, err := yamux.Client(c.StreamConn(), tunnel.MuxConfig(tunnel.DefaultWindow))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mux.Close(); c.CloseNow() })
	return c, mux
}

// openRaw opens service on mux and reads the gateway's answer.
func openRaw(t *testing.T, mux *yamux.Session, service string) (*yamux.Stream, tunnel.OpenStatus) {
	t.Helper()
	st, err := mux.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := tunnel.AppendOpenRequest(nil, service)
	if _, err := st.Write(req); err != nil {
		t.Fatal(err)
	}
	status, _, err := tunnel.ReadOpenResponse(st)
	if err != nil {
		t.Fatal(err)
	}
	return st, status
}

// waitUntil polls cond (a state the gateway reaches on its own, with no
// event to wait on from outside) until it holds or d has passed.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHalfClosedStreamEndsWithTunnel: the client half-closes a stream to a
// backend that then stays quiet, and the tunnel dies. The session must
// end all the same: its backend connection is aborted (a reset, not a
// FIN), the session and per-address counts drop, and a new session from
// the same address is admitted at max_sessions_per_ip = 1.
func TestHalfClosedStreamEndsWithTunnel(t *testing.T) {
	noLeaks(t)
	backend, eof, gone := quietBackend(t)
	g := startGateway(t, fmt.Sprintf("[limits]\nmax_sessions_per_ip = 1\n[services.quiet]\nbackend = %q\npublic = true\n", backend))
	ws, mux := rawMux(t, g.url)
	st, status := openRaw(t, mux, "quiet")
	if status != tunnel.OpenOK {
		t.Fatalf("open: %v", status)
	}
	st.Close() // half-close: the backend reads end of file
	if err := <-eof; err != nil {
		t.Fatal(err)
	}
	ws.CloseNow() // the tunnel dies without a word
	if err := <-gone; !isReset(err) {
		t.Errorf("the backend's connection ended with %v, want a reset", err)
	}
	waitUntil(t, 5*time.Second, "the session is still counted", func() bool { return g.srv.Sessions() == 0 })
	// The per-address count dropped too: a new session is admitted.
	_, mux2 := rawMux(t, g.url)
	if _, status := openRaw(t, mux2, "quiet"); status != tunnel.OpenOK {
		t.Fatalf("a new session's open: %v", status)
	}
}

// TestShutdownBoundedByDrainTimeout: a half-closed stream to a quiet
// backend cannot hold Shutdown past its deadline.
func TestShutdownBoundedByDrainTimeout(t *testing.T) {
	noLeaks(t)
	backend, eof, gone := quietBackend(t)
	cfg := fmt.Sprintf("[services.quiet]\nbackend = %q\npublic = true\n", backend)
	g := startGateway(t, cfg)
	_, mux := rawMux(t, g.url)
	st, _ := openRaw(t, mux, "quiet")
	st.Close()
	<-eof
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- g.srv.Shutdown(ctx) }()
	select {
	case <-shut:
	case <-time.After(15 * time.Second): // the tunnel's close handshake is bounded by 5 s
		t.Fatal("Shutdown did not return after its deadline")
	}
	<-gone
	if n := g.srv.Sessions(); n != 0 {
		t.Fatalf("%d sessions after Shutdown", n)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// TestLongHalfClose: a half-close may last far longer than every timer
// the gateway has (reaper, keepalive), both ways, and the bytes after it
// still arrive whole.
func TestLongHalfClose(t *testing.T) {
	t.Parallel()
	const wait = time.Second // 10 times the timers below
	answer := make([]byte, 12000)
	rand.Read(answer)
	late := tcpBackend(t, func(c *net.TCPConn) {
		io.Copy(io.Discard, c) // the request, to end of file
		time.Sleep(wait)       // a batch job thinking
		c.Write(answer)
	})
	heard := make(chan []byte, 1)
	deaf := tcpBackend(t, func(c *net.TCPConn) {
		c.CloseWrite() // the backend is done talking at once
		b, _ := io.ReadAll(c)
		heard <- b
	})
	g := startGateway(t, baseConfig(fmt.Sprintf("[server]\nkeepalive = \"100ms\"\n[services.late]\nbackend = %q\npublic = true\n[services.deaf]\nbackend = %q\npublic = true\n", late, deaf)))
	g.srv.SetReapTimeout(100 * time.Millisecond)
	s := connect(t, g.url, &client.Options{Keepalive: 100 * time.Millisecond})
	ctx := context.Background()

	c, err := s.Dial(ctx, "late")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("request"))
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, answer) {
		t.Fatalf("answer after a long half-close: %d of %d bytes, %v", len(got), len(answer), err)
	}

	d, err := s.Dial(ctx, "deaf")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if b, err := io.ReadAll(d); err != nil || len(b) != 0 {
		t.Fatalf("the deaf backend's end: %q, %v", b, err)
	}
	time.Sleep(wait) // the client thinking, with the backend's half gone
	msg := []byte("written long after the backend's half-close")
	if _, err := d.Write(msg); err != nil {
		t.Fatal(err)
	}
	d.CloseWrite()
	if b := <-heard; !bytes.Equal(b, msg) {
		t.Fatalf("the backend heard %q", b)
	}
	if n := g.srv.Stats().StreamsReaped; n != 0 {
		t.Fatalf("%d streams reaped", n)
	}
}

// TestReaper: a stream that the gateway has closed and the client never
// closes is reset after the reap timeout, on both sides; the client sees a
// reset, never a clean end, and the gateway lets go of the stream.
func TestReaper(t *testing.T) {
	t.Parallel()
	g := startGateway(t, baseConfig(""))
	g.srv.SetReapTimeout(100 * time.Millisecond)
	_, mux := rawMux(t, g.url)
	st, status := openRaw(t, mux, "nosuch")
	if status != tunnel.OpenUnknownService {
		t.Fatalf("status %v", status)
	}
	// Keep writing to the refused stream, never closing it: the gateway
	// drains it, then resets it.
	var werr error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if _, werr = st.Write(make([]byte, 1024)); werr != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(werr, yamux.ErrConnectionReset) {
		t.Fatalf("writes to a reaped stream: %v, want a reset", werr)
	}
	if _, err := st.Read(make([]byte, 1)); !errors.Is(err, yamux.ErrConnectionReset) {
		t.Fatalf("read of a reaped stream: %v, want a reset", err)
	}
	if n := g.srv.Stats().StreamsReaped; n != 1 {
		t.Fatalf("%d streams reaped", n)
	}
	// The gateway's yamux forgot the stream: the reset it gave itself is
	// read before the next bytes from the client.
	if _, status := openRaw(t, mux, "echo"); status != tunnel.OpenOK {
		t.Fatal(status)
	}
	waitUntil(t, 5*time.Second, "the reaped stream is still held", func() bool { return g.srv.MuxStreams() == 1 })
}

// TestTokenExpiryEndsSession: a session opened with a JWT is closed with
// 4401 "token expired" when the token expires, streams and all.
func TestTokenExpiryEndsSession(t *testing.T) {
	t.Parallel()
	g := startGateway(t, jwtConfig(t, echoBackend(t)))
	tok := signHS(t, hsSecret, jwt.MapClaims{"sub": "page", "aud": "ferry-test", "services": []string{"redis"}, "exp": time.Now().Add(1500 * time.Millisecond).Unix()})
	statuses := make(chan client.Status, 16)
	s := connect(t, g.url, &client.Options{Token: tok, MinBackoff: time.Hour, OnStatus: func(st client.Status) { statuses <- st }})
	c, err := s.Dial(context.Background(), "redis")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.ReadAll(c); !errors.Is(err, client.ErrTunnelLost) {
		t.Fatalf("the stream of an expired session ended with %v", err)
	}
	for st := range statuses {
		if st.State != client.Reconnecting {
			continue
		}
		var te *client.TunnelClosedError
		if !errors.As(st.Err, &te) || te.Code != 4401 || te.Reason != "token expired" || !te.Remote {
			t.Fatalf("status %v: %v, want 4401 token expired", st.State, st.Err)
		}
		break
	}
	if n := g.srv.Stats().TokensExpired; n != 1 {
		t.Fatalf("TokensExpired = %d", n)
	}
}

// TestCloseReasonReachesClient: the gateway's close code and reason reach
// the client's status, here 1000 from the idle timeout.
func TestCloseReasonReachesClient(t *testing.T) {
	t.Parallel()
	g := startGateway(t, baseConfig("[server]\nidle_timeout = \"50ms\"\n"))
	statuses := make(chan client.Status, 16)
	connect(t, g.url, &client.Options{MinBackoff: time.Hour, OnStatus: func(st client.Status) { statuses <- st }})
	for st := range statuses {
		if st.State != client.Reconnecting {
			continue
		}
		var te *client.TunnelClosedError
		if !errors.As(st.Err, &te) || te.Code != 1000 || te.Reason != "idle for 50ms" {
			t.Fatalf("status after the idle timeout: %v", st.Err)
		}
		if want := "client: the gateway closed the tunnel: idle for 50ms (1000)"; st.Err.Error() != want {
			t.Fatalf("message %q, want %q", st.Err, want)
		}
		return
	}
}

// TestDrainIdleSessionGoesAtOnce: on Shutdown, a session without streams
// is sent a GoAway and closed with 1001 at once, not after drain_timeout;
// a handshake meanwhile gets 503 with a Retry-After; /readyz says 503.
func TestDrainIdleSessionGoesAtOnce(t *testing.T) {
	t.Parallel()
	g := startGateway(t, baseConfig("[server]\ndrain_timeout = \"20s\"\n"))
	idle, idleMux := rawMux(t, g.url)
	busy, busyMux := rawMux(t, g.url)
	st, status := openRaw(t, busyMux, "echo")
	if status != tunnel.OpenOK {
		t.Fatalf("open: %v", status)
	}
	admin := httptest.NewServer(g.srv.AdminHandler())
	defer admin.Close()
	shut := make(chan error, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- g.srv.Shutdown(ctx)
	}()
	// The idle session: GoAway, then 1001, within a second.
	<-idleMux.CloseChan()
	var ce *tunnel.CloseError
	if !errors.As(idle.Err(), &ce) || ce.Code != tunnel.StatusGoingAway || ce.Local {
		t.Fatalf("the idle session ended with %v, want the gateway's 1001", idle.Err())
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the idle session got its 1001 after %s", d)
	}
	if _, err := idleMux.OpenStream(); err == nil {
		t.Error("a stream opened on a closed session")
	}
	// The busy session has had its GoAway: no new streams, the open one
	// works.
	waitUntil(t, 5*time.Second, "the GoAway", func() bool {
		s, err := busyMux.OpenStream()
		if err == nil {
			s.Close()
		}
		return errors.Is(err, yamux.ErrRemoteGoAway)
	})
	st.Write([]byte("still"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(st, buf); err != nil || string(buf) != "still" {
		t.Fatalf("the open stream during the drain: %q, %v", buf, err)
	}
	resp, err := http.Get(admin.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: %d", resp.StatusCode)
	}
	_, resp, err = tunnel.Dial(context.Background(), g.url, &tunnel.DialOptions{Subprotocols: []string{tunnel.Subprotocol}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "20" {
		t.Errorf("a handshake while draining: %v, %+v", err, resp)
	}
	// The last stream ends: its session goes with 1001, and Shutdown
	// returns long before drain_timeout.
	st.Close()
	io.Copy(io.Discard, st)
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	<-busyMux.CloseChan()
	if !errors.As(busy.Err(), &ce) || ce.Code != tunnel.StatusGoingAway {
		t.Fatalf("the busy session ended with %v", busy.Err())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Shutdown took %s with drain_timeout 20s and nothing left", d)
	}
}

// TestKeepaliveDeadPeer: a peer that stops answering (it reads nothing, so
// it answers no ping) is closed with 1011 "keepalive timeout" after two
// intervals, not with 1000.
func TestKeepaliveDeadPeer(t *testing.T) {
	t.Parallel()
	g := startGateway(t, baseConfig("[server]\nkeepalive = \"100ms\"\n"))
	// A hand-made handshake, then silence: nothing is read until the
	// gateway has given up, so the frames it sent are all still here.
	nc, err := net.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(g.url, "/tunnel"), "ws://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fmt.Fprintf(nc, "GET /tunnel HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ferry.v1\r\n\r\n", nc.RemoteAddr())
	waitUntil(t, 5*time.Second, "the dead peer's session is still open", func() bool { return g.srv.Stats().KeepaliveDeaths == 1 })
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	pings := 0
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			t.Fatalf("no close frame after %d pings: %v", pings, err)
		}
		p := make([]byte, h[1]&0x7f) // control frames: short, unmasked
		if _, err := io.ReadFull(br, p); err != nil {
			t.Fatal(err)
		}
		switch h[0] & 0x0f {
		case 0x9:
			pings++
		case 0x8:
			code, reason := binary.BigEndian.Uint16(p), string(p[2:])
			if code != 1011 || !strings.HasPrefix(reason, tunnel.KeepAliveReason) || pings != 1 {
				t.Fatalf("closed with %d %q after %d pings, want 1011 %q after 1", code, reason, pings, tunnel.KeepAliveReason)
			}
			return
		default:
			t.Fatalf("frame %#x", h[0])
		}
	}
}

// TestKeepaliveSlowLink: a live client that reads slowly, so that the
// gateway's pings wait behind megabytes of data in the socket buffers, is
// not declared dead, and every byte arrives.
func TestKeepaliveSlowLink(t *testing.T) {
	t.Parallel()
	g := startGateway(t, baseConfig("[server]\nkeepalive = \"50ms\"\n"))
	s := connect(t, g.url, &client.Options{Keepalive: time.Hour})
	c, err := s.Dial(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := make([]byte, 8<<20)
	rand.Read(data)
	go func() { c.Write(data); c.CloseWrite() }()
	got := make([]byte, 0, len(data))
	buf := make([]byte, 64<<10)
	for start := time.Now(); ; {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		// 64 KiB every 10 ms: 6.4 MB/s, so the transfer takes over a
		// second, twenty keepalive intervals.
		time.Sleep(10*time.Millisecond - time.Since(start)%(10*time.Millisecond))
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("%d of %d bytes, or different", len(got), len(data))
	}
	if n := g.srv.Stats().KeepaliveDeaths; n != 0 {
		t.Fatalf("%d keepalive deaths on a live link", n)
	}
}

// TestLimitsHeader: the 101 response tells the client its stream limit.
func TestLimitsHeader(t *testing.T) {
	t.Parallel()
	g := startGateway(t, baseConfig("[limits]\nmax_streams_per_session = 7\n"))
	c, resp, err := tunnel.Dial(context.Background(), g.url, &tunnel.DialOptions{Subprotocols: []string{tunnel.Subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if got := resp.Header.Get(gateway.LimitsHeader); got != "streams=7" {
		t.Fatalf("%s: %q, want streams=7", gateway.LimitsHeader, got)
	}
}
