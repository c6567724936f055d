//go:build !js

package tunnel

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"math"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// TestMuxConfigTimers pins each of yamux's timers at the value that
// MuxConfig documents: none of them may end a stream or a session that is
// merely slow or half-closed.
func TestMuxConfigTimers(t *testing.T) {
	t.Parallel()
	cfg := MuxConfig(0)
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"MaxStreamWindowSize", cfg.MaxStreamWindowSize, uint32(256 << 10)},
		{"StreamCloseTimeout", cfg.StreamCloseTimeout, time.Duration(0)},
		{"StreamOpenTimeout", cfg.StreamOpenTimeout, time.Duration(0)},
		{"EnableKeepAlive", cfg.EnableKeepAlive, false},
		{"ConnectionWriteTimeout", cfg.ConnectionWriteTimeout, time.Duration(math.MaxInt64)},
		{"AcceptBacklog", cfg.AcceptBacklog, 256},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if w := MuxConfig(1 << 20).MaxStreamWindowSize; w != 1<<20 {
		t.Errorf("window of 1 MiB gives %d", w)
	}
	if err := yamux.VerifyConfig(cfg); err != nil {
		t.Fatal(err)
	}
}

// muxPair runs yamux over a real WebSocket pair: the client side and the
// server side with its byte stream.
func muxPair(t *testing.T) (*yamux.Session, *yamux.Session, *MuxConn) {
	t.Helper()
	client, server := dialPair(t)
	view := server.StreamConn()
	cm, err := yamux.Client(client.StreamConn(), MuxConfig(DefaultWindow))
	if err != nil {
		t.Fatal(err)
	}
	sm, err := yamux.Server(view, MuxConfig(DefaultWindow))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cm.Close(); sm.Close() })
	return cm, sm, view
}

// TestLongHalfCloseYamux: a stream half-closed by one side carries bytes
// the other way for as long as it takes, with MuxConfig's timers.
func TestLongHalfCloseYamux(t *testing.T) {
	t.Parallel()
	cm, sm, _ := muxPair(t)
	cs, err := cm.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	cs.Write([]byte("request"))
	cs.Close() // the client's half-close
	ss, err := sm.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(ss); err != nil || string(b) != "request" {
		t.Fatalf("server read %q, %v", b, err)
	}
	time.Sleep(300 * time.Millisecond) // the server thinking
	answer := make([]byte, 1<<20)
	rand.Read(answer)
	go func() { ss.Write(answer); ss.Close() }()
	if b, err := io.ReadAll(Stream{cs}); err != nil || !bytes.Equal(b, answer) {
		t.Fatalf("client read %d of %d bytes, %v", len(b), len(answer), err)
	}
}

// TestResetStream: ResetStream resets a stream on both sides: the peer's
// reads and writes fail with a reset, never a clean end, and this side's
// yamux forgets the stream and drops what it buffered for it; the session
// and its other streams go on.
func TestResetStream(t *testing.T) {
	t.Parallel()
	cm, sm, view := muxPair(t)
	cs, _ := cm.OpenStream()
	cs.Write(make([]byte, 100<<10)) // buffered on the server side, unread
	ss, err := sm.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := cm.OpenStream()
	other.Write([]byte("x"))
	so, err := sm.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	if err := view.ResetStream(ss.StreamID()); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Read(make([]byte, 1)); !errors.Is(err, yamux.ErrConnectionReset) {
		t.Fatalf("peer read after reset: %v", err)
	}
	if _, err := cs.Write([]byte("more")); !errors.Is(err, yamux.ErrConnectionReset) {
		t.Fatalf("peer write after reset: %v", err)
	}
	// The next bytes from the peer carry the local reset in before them.
	other.Write([]byte("y"))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(so, buf); err != nil || string(buf) != "xy" {
		t.Fatalf("the other stream: %q, %v", buf, err)
	}
	if _, err := ss.Read(make([]byte, 1)); !errors.Is(err, yamux.ErrConnectionReset) {
		t.Fatalf("local read after reset: %v", err)
	}
	if n := sm.NumStreams(); n != 1 {
		t.Fatalf("the server's yamux holds %d streams, want the other one", n)
	}
}

// countGrant is a CopyGrant of n buffers that records the most held.
type countGrant struct {
	n, held, most int
}

func (g *countGrant) TryAcquire() bool {
	if g.held == g.n {
		return false
	}
	g.held++
	g.most = max(g.most, g.held)
	return true
}

func (g *countGrant) Release() { g.held-- }

// TestCopyAdaptiveGrant: the bulk buffer is taken only when the grant
// allows it, given back every time, and the bytes arrive all the same.
func TestCopyAdaptiveGrant(t *testing.T) {
	t.Parallel()
	data := make([]byte, 3<<20)
	rand.Read(data)
	sizes := []int{smallCopy, largeCopy, 100, smallCopy, largeCopy, largeCopy, 1}
	for _, n := range []int{0, 1} {
		g := &countGrant{n: n}
		var out bytes.Buffer
		if _, err := copyAdaptive(&out, &burstyReader{data: bytes.Clone(data), sizes: sizes}, g); err != nil || !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("grant of %d: %v", n, err)
		}
		if g.most != n || g.held != 0 {
			t.Fatalf("grant of %d: held at most %d, %d at the end", n, g.most, g.held)
		}
	}
}
