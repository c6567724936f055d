package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

func TestOpenCodec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      []byte
		service string
		err     bool
	}{
		{"redis", []byte("\x01\x05redis"), "redis", false},
		{"max length", append([]byte{1, 255}, bytes.Repeat([]byte("a"), 255)...), strings.Repeat("a", 255), false},
		{"bad version", []byte("\x02\x05redis"), "", true},
		{"empty name", []byte("\x01\x00"), "", true},
		{"truncated", []byte("\x01\x05red"), "", true},
		{"not UTF-8", []byte("\x01\x01\xff"), "", true},
		{"nothing", nil, "", true},
	}
	for _, tt := range tests {
		got, err := ReadOpenRequest(bytes.NewReader(tt.in))
		if (err != nil) != tt.err || got != tt.service {
			t.Errorf("%s: ReadOpenRequest = %q, %v", tt.name, got, err)
		}
	}
	if _, err := AppendOpenRequest(nil, ""); !errors.Is(err, ErrBadOpen) {
		t.Errorf("empty service: %v", err)
	}
	if _, err := AppendOpenRequest(nil, strings.Repeat("a", 256)); !errors.Is(err, ErrBadOpen) {
		t.Errorf("long service: %v", err)
	}
	long := strings.Repeat("é", 600) // 1200 bytes: cut to 1024 on a rune boundary
	st, msg, err := ReadOpenResponse(bytes.NewReader(AppendOpenResponse(nil, OpenRefused, long)))
	if err != nil || st != OpenRefused || len(msg) != 1024 || msg != long[:1024] {
		t.Errorf("long message: %v %d %v", st, len(msg), err)
	}
	for _, bad := range [][]byte{{2, 0, 0, 0}, {1, 0, 0x04, 0x01}, {1, 0, 0, 2, 'a'}, {1, 0, 0, 1, 0xff}} {
		if _, _, err := ReadOpenResponse(bytes.NewReader(bad)); err == nil {
			t.Errorf("ReadOpenResponse(%x) succeeded", bad)
		}
	}
}

func FuzzOpenCodec(f *testing.F) {
	f.Add([]byte("\x01\x05redis"))
	f.Add([]byte("\x01\x02\x00\x05nope!"))
	f.Add([]byte("\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if svc, err := ReadOpenRequest(bytes.NewReader(b)); err == nil {
			again, err := AppendOpenRequest(nil, svc)
			if err != nil || !bytes.Equal(again, b[:len(again)]) {
				t.Fatalf("request %q does not round-trip", svc)
			}
		}
		if st, msg, err := ReadOpenResponse(bytes.NewReader(b)); err == nil {
			again := AppendOpenResponse(nil, st, msg)
			if !bytes.Equal(again, b[:len(again)]) {
				t.Fatalf("response %v %q does not round-trip", st, msg)
			}
		}
	})
}

// TestStreamConnOneMessagePerFrame runs yamux over StreamConn between two
// Conns, moves data through several streams, and checks that every
// WebSocket message held exactly one whole yamux frame (yamux writes a
// frame's header and body with separate calls).
func TestStreamConnOneMessagePerFrame(t *testing.T) {
	t.Parallel()
	client, server := dialPair(t)
	cs, ss := client.StreamConn(), server.StreamConn()
	// Count frames as the server side receives them: wrap its reader.
	counter := &frameCounter{}
	cm, err := yamux.Client(cs, MuxConfig(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cm.Close()
	sm, err := yamux.Server(&countingConn{streamConn: ss, fc: counter}, MuxConfig(0))
	if err != nil {
		t.Fatal(err)
	}
	defer sm.Close()
	go func() {
		for {
			st, err := sm.AcceptStream()
			if err != nil {
				return
			}
			go func() { io.Copy(st, st); st.Close() }()
		}
	}()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := cm.OpenStream()
			if err != nil {
				t.Error(err)
				return
			}
			data := make([]byte, 3<<20)
			rand.Read(data)
			go func() { st.Write(data); st.Close() }()
			got, err := io.ReadAll(st)
			if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
				t.Errorf("stream echo: %d bytes, %v", len(got), err)
			}
		}()
	}
	wg.Wait()
	// The client's last message (a window update) may still be on its way
	// to the server's counter: wait until the counter has every message
	// the client wrote.
	var msgs, frames, split int
	sent := func() int { return int(cs.writes.Load()) }
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		msgs, frames, split = counter.result()
		if msgs >= sent() || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("client sent %d messages for %d yamux frames (%.3f messages per frame)", sent(), frames, float64(msgs)/float64(frames))
	if split != 0 || msgs != frames || sent() != frames {
		t.Fatalf("%d messages, %d frames, %d frames split across messages", msgs, frames, split)
	}
}

// frameCounter reads the server's byte stream message by message and
// counts yamux frames and messages that do not hold exactly whole frames.
type frameCounter struct {
	mu           sync.Mutex
	msgs, frames int
	split        int
}

type countingConn struct {
	*streamConn
	fc  *frameCounter
	buf []byte
}

// Read reads one whole message at a time from the Conn and checks that it
// holds whole frames.
func (c *countingConn) Read(p []byte) (int, error) {
	if len(c.buf) == 0 {
		typ, msg, err := c.streamConn.c.Read(context.Background())
		if err != nil {
			return 0, c.mapErr(err)
		}
		if typ != MessageBinary {
			return 0, errors.New("text message")
		}
		c.fc.count(msg)
		c.buf = msg
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

func (fc *frameCounter) count(msg []byte) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.msgs++
	for len(msg) > 0 {
		if len(msg) < yamuxHeaderSize {
			fc.split++
			return
		}
		n := yamuxHeaderSize + frameBody(msg)
		if n > len(msg) {
			fc.split++
			return
		}
		fc.frames++
		msg = msg[n:]
	}
}

func (fc *frameCounter) result() (int, int, int) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.msgs, fc.frames, fc.split
}
