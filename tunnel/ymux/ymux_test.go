//go:build !js

package ymux_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ferrygw/ferry/tunnel"
	"github.com/ferrygw/ferry/tunnel/ymux"
	"github.com/hashicorp/yamux"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tcpPair returns the two ends of a real loopback TCP connection.
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	return client, server
}

// pair runs this package's client against hashicorp/yamux's server with
// Ferry's settings and a stream window of window bytes on the server.
func pair(t testing.TB, window uint32) (*ymux.Session, *yamux.Session) {
	t.Helper()
	cc, sc := tcpPair(t)
	srv, err := yamux.Server(sc, tunnel.MuxConfig(window))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ymux.Client(cc, tunnel.DefaultWindow)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cli.Close()
		srv.Close()
	})
	return cli, srv
}

// echo accepts streams on srv and echoes each until its FIN, then closes.
func echo(srv *yamux.Session) {
	for {
		st, err := srv.AcceptStream()
		if err != nil {
			return
		}
		go func() {
			_, _ = io.Copy(st, st)
			st.Close()
		}()
	}
}

func TestEchoAgainstHashicorpYamux(t *testing.T) {
	for _, tc := range []struct {
		name    string
		window  uint32 // the server's
		streams int
		size    int
	}{
		{"one stream, default window", tunnel.DefaultWindow, 1, 8 << 20},
		{"16 streams, default window", tunnel.DefaultWindow, 16, 1 << 20},
		{"8 streams, 4 MiB server window", 4 << 20, 8, 4 << 20},
		{"empty stream", tunnel.DefaultWindow, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli, srv := pair(t, tc.window)
			go echo(srv)
			var wg sync.WaitGroup
			errs := make(chan error, tc.streams)
			for range tc.streams {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- echoOnce(cli, tc.size)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			if n := cli.NumStreams(); n != 0 {
				t.Errorf("NumStreams after every stream ended = %d, want 0", n)
			}
		})
	}
}

// echoOnce sends size random bytes on a new stream, half-closes, and
// checks that the same bytes and then end of file come back.
func echoOnce(cli *ymux.Session, size int) error {
	st, err := cli.OpenStream()
	if err != nil {
		return err
	}
	data := make([]byte, size)
	rand.Read(data)
	werr := make(chan error, 1)
	go func() {
		_, err := st.Write(data)
		if err == nil {
			err = st.Close()
		}
		werr <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, st)
	if err != nil {
		return err
	}
	if err := <-werr; err != nil {
		return err
	}
	if n != int64(size) || !bytes.Equal(h.Sum(nil), sha(data)) {
		return errors.New("the echo differs from what was sent")
	}
	return nil
}

// accepted opens a stream, writes "x" on it (yamux's server learns of a
// stream from its first frame) and returns both ends of it.
func accepted(t *testing.T, cli *ymux.Session, srv *yamux.Session) (*ymux.Stream, *yamux.Stream) {
	t.Helper()
	cst, err := cli.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cst.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	sst, err := srv.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	return cst, sst
}

func sha(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// The server may send a stream no more than the client's window before the
// client reads; then reading lets the rest through.
func TestClientWindowHoldsServer(t *testing.T) {
	cli, srv := pair(t, tunnel.DefaultWindow)
	cst, sst := accepted(t, cli, srv)
	big := make([]byte, 1<<20)
	rand.Read(big)
	// A write deadline ends the server's blocked write: no readiness wait.
	_ = sst.SetWriteDeadline(time.Now().Add(time.Second))
	n, err := sst.Write(big)
	if !errors.Is(err, yamux.ErrTimeout) || n != tunnel.DefaultWindow {
		t.Fatalf("server wrote %d (%v) to a client that does not read; want its window %d and a timeout", n, err, tunnel.DefaultWindow)
	}
	_ = sst.SetWriteDeadline(time.Time{})
	go func() {
		_, _ = sst.Write(big[n:])
		sst.Close()
	}()
	got, err := io.ReadAll(cst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(big))
	}
}

// The client writes no more than the server's window (its initial 256 KiB
// plus what its acknowledgement grants) before the server reads.
func TestServerWindowHoldsClient(t *testing.T) {
	for _, window := range []uint32{tunnel.DefaultWindow, 1 << 20} {
		cli, srv := pair(t, window)
		cst, sst := accepted(t, cli, srv)
		one := make([]byte, 1)
		if _, err := io.ReadFull(sst, one); err != nil {
			t.Fatal(err)
		}
		// Its acceptance granted the rest of its window; the byte read is
		// granted back only once half the window is read.
		if _, err := cli.Ping(); err != nil { // answered after the grant
			t.Fatal(err)
		}
		_ = cst.SetWriteDeadline(time.Now().Add(time.Second))
		n, err := cst.Write(make([]byte, 4<<20))
		if !errors.Is(err, ymux.ErrTimeout) || n != int(window)-1 {
			t.Errorf("window %d: client wrote %d (%v) to a server that does not read; want %d and ErrTimeout", window, n, err, window-1)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("ErrTimeout is not a net.Error timeout: %v", err)
		}
	}
}

func TestPingAndGoAway(t *testing.T) {
	cli, srv := pair(t, tunnel.DefaultWindow)
	if rtt, err := cli.Ping(); err != nil || rtt <= 0 {
		t.Fatalf("Ping = %v, %v", rtt, err)
	}
	go echo(srv)
	if err := echoOnce(cli, 1000); err != nil {
		t.Fatal(err)
	}
	if err := srv.GoAway(); err != nil {
		t.Fatal(err)
	}
	// The GoAway goes out before the answer to this ping.
	if _, err := cli.Ping(); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.OpenStream(); !errors.Is(err, ymux.ErrRemoteGoAway) {
		t.Fatalf("OpenStream after GoAway = %v, want ErrRemoteGoAway", err)
	}
	if cli.IsClosed() {
		t.Fatal("GoAway closed the session")
	}
}

func TestServerOpenedStreamIsRefused(t *testing.T) {
	cli, srv := pair(t, tunnel.DefaultWindow)
	st, err := srv.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Read(make([]byte, 1)); !errors.Is(err, yamux.ErrConnectionReset) {
		t.Fatalf("server's Read on a stream the client refused = %v, want ErrConnectionReset", err)
	}
	if n := cli.NumStreams(); n != 0 {
		t.Fatalf("client holds %d streams", n)
	}
}

func TestSessionEnd(t *testing.T) {
	cli, srv := pair(t, tunnel.DefaultWindow)
	st, sst := accepted(t, cli, srv)
	if _, err := sst.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 7)
	if _, err := io.ReadFull(st, got); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	<-cli.CloseChan()
	// As in hashicorp/yamux: end of file, which tunnel.Stream turns into
	// ErrTunnelLost since the session is closed.
	if n, err := st.Read(got); n != 0 || err != io.EOF {
		t.Fatalf("Read after the session ended = %d, %v", n, err)
	}
	if _, err := st.Write([]byte("x")); !errors.Is(err, ymux.ErrSessionShutdown) {
		t.Fatalf("Write after the session ended = %v", err)
	}
	if _, err := cli.OpenStream(); !errors.Is(err, ymux.ErrSessionShutdown) {
		t.Fatalf("OpenStream after the session ended = %v", err)
	}
	if _, err := cli.Ping(); !errors.Is(err, ymux.ErrSessionShutdown) {
		t.Fatalf("Ping after the session ended = %v", err)
	}
}

func TestDeadlines(t *testing.T) {
	cli, srv := pair(t, tunnel.DefaultWindow)
	go echo(srv)
	st, err := cli.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := st.Read(make([]byte, 1))
		done <- err
	}()
	// A deadline set while the Read waits wakes it.
	_ = st.SetReadDeadline(time.Unix(1, 0))
	if err := <-done; !errors.Is(err, ymux.ErrTimeout) {
		t.Fatalf("Read past its deadline = %v", err)
	}
	// A deadline cleared: the stream goes on.
	_ = st.SetDeadline(time.Time{})
	if _, err := st.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2)
	if _, err := io.ReadFull(st, got); err != nil || string(got) != "ok" {
		t.Fatalf("read %q, %v", got, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("x")); !errors.Is(err, ymux.ErrStreamClosed) {
		t.Fatalf("Write after Close = %v", err)
	}
	if _, err := io.ReadAll(st); err != nil {
		t.Fatal(err)
	}
}

// rawPeer is the server end of a pipe to a client session, driven frame
// by frame.
type rawPeer struct {
	t    *testing.T
	conn net.Conn
}

func newRaw(t *testing.T) (*ymux.Session, *rawPeer) {
	cc, sc := tcpPair(t)
	cli, err := ymux.Client(cc, tunnel.DefaultWindow)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cli.Close()
		sc.Close()
	})
	return cli, &rawPeer{t, sc}
}

func frame(typ byte, flags uint16, id, length uint32, body []byte) []byte {
	b := make([]byte, 12, 12+len(body))
	b[1] = typ
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint32(b[4:], id)
	binary.BigEndian.PutUint32(b[8:], length)
	return append(b, body...)
}

func (p *rawPeer) send(frames ...[]byte) {
	p.t.Helper()
	for _, f := range frames {
		if _, err := p.conn.Write(f); err != nil {
			p.t.Fatal(err)
		}
	}
}

// expect reads one frame's header and checks its type, flags and stream.
func (p *rawPeer) expect(typ byte, flags uint16, id uint32) uint32 {
	p.t.Helper()
	var h [12]byte
	if _, err := io.ReadFull(p.conn, h[:]); err != nil {
		p.t.Fatal(err)
	}
	if h[0] != 0 || h[1] != typ || binary.BigEndian.Uint16(h[2:]) != flags || binary.BigEndian.Uint32(h[4:]) != id {
		p.t.Fatalf("frame % x, want type %d flags %d stream %d", h, typ, flags, id)
	}
	return binary.BigEndian.Uint32(h[8:])
}

func TestWireFrames(t *testing.T) {
	cli, p := newRaw(t)
	st, err := cli.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	if d := p.expect(1, 1, 1); d != 0 {
		t.Fatalf("SYN grants %d more, want 0 (the window is the initial one)", d)
	}
	if _, err := st.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if n := p.expect(0, 0, 1); n != 3 {
		t.Fatalf("data frame of %d bytes", n)
	}
	body := make([]byte, 3)
	if _, err := io.ReadFull(p.conn, body); err != nil || string(body) != "abc" {
		t.Fatalf("body %q %v", body, err)
	}
	// Half the window read back: the client grants it again.
	half := make([]byte, 128<<10)
	p.send(frame(1, 2, 1, 0, nil), frame(0, 0, 1, uint32(len(half)), half))
	if _, err := io.ReadFull(st, half); err != nil {
		t.Fatal(err)
	}
	if d := p.expect(1, 0, 1); d != uint32(len(half)) {
		t.Fatalf("window update of %d, want %d", d, len(half))
	}
	// A ping is answered with its value.
	p.send(frame(2, 1, 0, 77, nil))
	if v := p.expect(2, 2, 0); v != 77 {
		t.Fatalf("ping answered with %d", v)
	}
	// FIN with data: the data, then end of file.
	p.send(frame(0, 4, 1, 2, []byte("yz")))
	got, err := io.ReadAll(st)
	if err != nil || string(got) != "yz" {
		t.Fatalf("read %q, %v", got, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	p.expect(1, 4, 1)
	if n := cli.NumStreams(); n != 0 {
		t.Fatalf("%d streams after both FINs", n)
	}
	// RST: reads and writes fail with ErrConnectionReset.
	st3, err := cli.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	p.expect(1, 1, 3)
	p.send(frame(1, 8, 3, 0, nil))
	if _, err := st3.Read(make([]byte, 1)); !errors.Is(err, ymux.ErrConnectionReset) {
		t.Fatalf("Read after RST = %v", err)
	}
	if _, err := st3.Write([]byte("x")); !errors.Is(err, ymux.ErrConnectionReset) {
		t.Fatalf("Write after RST = %v", err)
	}
	// Data for a stream that is gone is dropped; the session goes on.
	p.send(frame(0, 0, 3, 5, []byte("stale")), frame(2, 1, 0, 78, nil))
	if v := p.expect(2, 2, 0); v != 78 {
		t.Fatalf("ping answered with %d", v)
	}
	if cli.IsClosed() {
		t.Fatal(cli.Err())
	}
}

func TestProtocolErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"version 1", append([]byte{1}, frame(2, 1, 0, 0, nil)[1:]...)},
		{"type 4", frame(4, 0, 0, 0, nil)},
		{"ping on a stream", frame(2, 1, 1, 0, nil)},
		{"data on stream 0", frame(0, 0, 0, 1, []byte("x"))},
		{"data past the window", frame(0, 0, 1, 256<<10+1, make([]byte, 256<<10+1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli, p := newRaw(t)
			if _, err := cli.OpenStream(); err != nil {
				t.Fatal(err)
			}
			p.expect(1, 1, 1)
			go func() { _, _ = p.conn.Write(tc.frame) }()
			<-cli.CloseChan()
			if err := cli.Err(); !errors.Is(err, ymux.ErrProtocol) {
				t.Fatalf("session ended with %v, want ErrProtocol", err)
			}
		})
	}
}

// Reset ends a stream on both sides: the server's reads and writes fail
// with yamux's reset error, the client's with ErrConnectionReset, and the
// stream is gone from both sessions; the session lives on.
func TestReset(t *testing.T) {
	cli, srv := pair(t, tunnel.DefaultWindow)
	cst, sst := accepted(t, cli, srv)
	if _, err := sst.Write(make([]byte, 1000)); err != nil { // unread by the client: dropped
		t.Fatal(err)
	}
	if _, err := cli.Ping(); err != nil { // the 1000 bytes have arrived
		t.Fatal(err)
	}
	if err := cst.Reset(); err != nil {
		t.Fatal(err)
	}
	if n, err := cst.Read(make([]byte, 10)); n != 0 || !errors.Is(err, ymux.ErrConnectionReset) {
		t.Errorf("client Read after Reset: %d, %v", n, err)
	}
	if _, err := cst.Write([]byte("y")); !errors.Is(err, ymux.ErrConnectionReset) {
		t.Errorf("client Write after Reset: %v", err)
	}
	if n := cli.NumStreams(); n != 0 {
		t.Errorf("client NumStreams = %d after Reset", n)
	}
	one := make([]byte, 2)
	if _, err := io.ReadFull(sst, one); !errors.Is(err, yamux.ErrConnectionReset) {
		t.Errorf("server Read after the client's Reset: %v", err)
	}
	if err := cst.Reset(); err != nil {
		t.Errorf("second Reset: %v", err)
	}
	if _, err := cli.Ping(); err != nil || cli.IsClosed() {
		t.Errorf("the session after a Reset: %v", err)
	}
}

// Reset while the server's data keeps arriving: the frames in flight
// are dropped and the session lives on (go test -race).
func TestResetWhileReceiving(t *testing.T) {
	cli, srv := pair(t, tunnel.DefaultWindow)
	for i := 0; i < 20; i++ {
		cst, sst := accepted(t, cli, srv)
		done := make(chan struct{})
		go func() {
			defer close(done)
			chunk := make([]byte, 16<<10)
			for {
				if _, err := sst.Write(chunk); err != nil {
					return
				}
			}
		}()
		if _, err := io.ReadFull(cst, make([]byte, 32<<10)); err != nil {
			t.Fatal(err)
		}
		if err := cst.Reset(); err != nil {
			t.Fatal(err)
		}
		<-done // the server's write fails once the RST arrives
	}
	if _, err := cli.Ping(); err != nil || cli.NumStreams() != 0 {
		t.Errorf("after the resets: %v, %d streams", err, cli.NumStreams())
	}
}
