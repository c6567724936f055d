package tunnel

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// dialPair returns a client and a server Conn joined by a real handshake
// over loopback TCP.
func dialPair(t testing.TB) (client, server *Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srvc := make(chan *Conn, 1)
	hs := &httpServer{handler: func(c *Conn) { srvc <- c }}
	go hs.serve(ln)
	t.Cleanup(func() { ln.Close() })
	client, _, err = Dial(context.Background(), "ws://"+ln.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	server = <-srvc
	t.Cleanup(func() { client.CloseNow(); server.CloseNow() })
	return client, server
}

func TestNetConn(t *testing.T) {
	t.Parallel()
	client, server := dialPair(t)
	cn, sn := client.NetConn(), server.NetConn()
	want := bytes.Repeat([]byte("ferry netconn "), 10000)
	go func() {
		for p := want; len(p) > 0; {
			n := min(len(p), 777)
			if _, err := cn.Write(p[:n]); err != nil {
				t.Error(err)
				return
			}
			p = p[n:]
		}
		cn.Write(nil) // an empty message is no byte
		cn.Close()
	}()
	got, err := io.ReadAll(sn)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d", len(got), len(want))
	}
}

func TestNetConnDeadline(t *testing.T) {
	t.Parallel()
	client, server := dialPair(t)
	sn := server.NetConn()
	sn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	buf := make([]byte, 10)
	if _, err := sn.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read = %v, want os.ErrDeadlineExceeded", err)
	}
	// The connection is still usable after the deadline.
	sn.SetReadDeadline(time.Time{})
	go client.Write(context.Background(), MessageBinary, []byte("later"))
	n, err := sn.Read(buf)
	if err != nil || string(buf[:n]) != "later" {
		t.Fatalf("Read after deadline = %q, %v", buf[:n], err)
	}
}

func TestNetConnTextFails(t *testing.T) {
	t.Parallel()
	client, server := dialPair(t)
	go client.Write(context.Background(), MessageText, []byte("text"))
	if _, err := server.NetConn().Read(make([]byte, 10)); CloseStatus(err) != StatusUnsupportedData {
		t.Fatalf("Read = %v, want 1003", err)
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	client, server := dialPair(t)
	go server.Read(context.Background())
	go client.Read(context.Background())
	for i := 0; i < 3; i++ {
		if err := client.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := server.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestContextCancelsRead(t *testing.T) {
	t.Parallel()
	_, server := dialPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, _, err := server.Read(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read = %v, want the context's error", err)
	}
	select {
	case <-server.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection still open after a cancelled read")
	}
}

// TestWriteAllocs pins the steady-state hot path at zero allocations per
// message, writing and reading, on both sides.
func TestWriteReadAllocs(t *testing.T) {
	client, server := dialPair(t)
	ctx := context.Background()
	for _, size := range []int{64, 64 << 10} {
		msg := make([]byte, size)
		buf := make([]byte, 0, size)
		for _, pair := range [][2]*Conn{{client, server}, {server, client}} {
			w, r := pair[0], pair[1]
			errc := make(chan error, 1)
			go func() {
				for i := 0; i < 102; i++ { // AllocsPerRun runs once more than asked
					if err := w.Write(ctx, MessageBinary, msg); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			allocs := testing.AllocsPerRun(100, func() {
				var err error
				_, buf, err = r.ReadAppend(ctx, buf[:0])
				if err != nil {
					t.Fatal(err)
				}
			})
			_, buf, _ = r.ReadAppend(ctx, buf[:0])
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if allocs != 0 {
				t.Errorf("%d-byte read: %v allocations per message, want 0", size, allocs)
			}
			done := make(chan struct{})
			go func() {
				for i := 0; i < 101; i++ {
					r.ReadAppend(ctx, buf[:0])
				}
				close(done)
			}()
			allocs = testing.AllocsPerRun(100, func() {
				if err := w.Write(ctx, MessageBinary, msg); err != nil {
					t.Fatal(err)
				}
			})
			<-done
			if allocs != 0 {
				t.Errorf("%d-byte write: %v allocations per message, want 0", size, allocs)
			}
		}
	}
}

func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	client, server := dialPair(t)
	ctx := context.Background()
	const writers, each = 8, 50
	go func() {
		for w := 0; w < writers; w++ {
			go func() {
				for i := 0; i < each; i++ {
					if i%2 == 0 {
						client.Write(ctx, MessageText, []byte(strings.Repeat("w", 1000+w)))
						continue
					}
					mw, err := client.Writer(ctx, MessageText)
					if err != nil {
						return
					}
					mw.Write([]byte(strings.Repeat("w", 500)))
					mw.Write([]byte(strings.Repeat("w", 500+w)))
					mw.Close()
				}
			}()
		}
	}()
	for i := 0; i < writers*each; i++ {
		_, p, err := server.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) < 1000 || len(p) >= 1000+writers || strings.Trim(string(p), "w") != "" {
			t.Fatalf("message %d interleaved: %d bytes", i, len(p))
		}
	}
}

// TestCancelAfterReaderDone checks that a context cancelled after a
// streamed message was read to its end leaves the connection usable.
func TestCancelAfterReaderDone(t *testing.T) {
	t.Parallel()
	client, server := dialPair(t)
	bg := context.Background()
	go client.Write(bg, MessageText, []byte("one"))
	ctx, cancel := context.WithCancel(bg)
	_, r, err := server.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); err != nil || string(b) != "one" {
		t.Fatalf("ReadAll = %q, %v", b, err)
	}
	cancel()
	go client.Write(bg, MessageText, []byte("two"))
	if _, p, err := server.Read(bg); err != nil || string(p) != "two" {
		t.Fatalf("Read after cancel = %q, %v", p, err)
	}
}
