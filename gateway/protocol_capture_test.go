package gateway_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrygw/ferry/tunnel"
	"github.com/hashicorp/yamux"
)

// recConn records what is read from a net.Conn (what the gateway sent)
// and what is written to it (what the client sent).
type recConn struct {
	net.Conn
	mu   sync.Mutex
	got  bytes.Buffer
	sent bytes.Buffer
}

func (r *recConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.sent.Write(p)
	r.mu.Unlock()
	return r.Conn.Write(p)
}

// clientMessages returns the unmasked payloads of the client's frames
// after its HTTP request (all single-frame binary messages here).
func (r *recConn) clientMessages(t *testing.T) [][]byte {
	t.Helper()
	r.mu.Lock()
	b := bytes.Clone(r.sent.Bytes())
	r.mu.Unlock()
	i := bytes.Index(b, []byte("\r\n\r\n"))
	if i < 0 {
		t.Fatal("no HTTP request in the capture")
	}
	b = b[i+4:]
	var out [][]byte
	for len(b) >= 6 {
		if b[0] != 0x82 || b[1]&0x80 == 0 || b[1]&0x7f > 125 {
			t.Fatalf("client frame %x: want a masked, short, final binary frame", b[:2])
		}
		n := int(b[1] & 0x7f)
		if len(b) < 6+n {
			break
		}
		key, p := b[2:6], bytes.Clone(b[6:6+n])
		for j := range p {
			p[j] ^= key[j%4]
		}
		out = append(out, p)
		b = b[6+n:]
	}
	return out
}

func (r *recConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.mu.Lock()
	r.got.Write(p[:n])
	r.mu.Unlock()
	return n, err
}

func (r *recConn) bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.got.Bytes())
}

// docExamples returns the hex examples of docs/PROTOCOL.md by name (the
// "<!-- example: NAME -->" before each block).
func docExamples(t *testing.T) map[string][]byte {
	t.Helper()
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	ex := map[string][]byte{}
	for _, m := range regexp.MustCompile("(?s)<!-- example: ([a-z-]+) -->\n```hex\n(.*?)```").FindAllSubmatch(doc, -1) {
		b, err := hex.DecodeString(strings.Join(strings.Fields(string(m[2])), ""))
		if err != nil {
			t.Fatalf("example %s: %v", m[1], err)
		}
		ex[string(m[1])] = b
	}
	return ex
}

// TestProtocolDocCapture runs the exchanges of docs/PROTOCOL.md against a
// real gateway, records the bytes on the wire both ways, and compares
// them with the doc's examples: the client's first two messages
// (yamux-syn, open-request, unmasked), the gateway's answer (open-ok) and
// a refusal (open-forbidden). The comparison masks one field: the delta
// of the gateway's window update (bytes 10..13 of open-ok), which is
// stream_window less 256 KiB less what the gateway had buffered, so
// depends on the config and on timing.
func TestProtocolDocCapture(t *testing.T) {
	ex := docExamples(t)
	want := ex["open-ok"]
	if want == nil || ex["yamux-syn"] == nil || ex["open-request"] == nil || ex["open-forbidden"] == nil {
		t.Fatal("docs/PROTOCOL.md lacks an example")
	}

	g := startGateway(t, aliceConfig(echoBackend(t)))
	var rec *recConn
	opts := &tunnel.DialOptions{
		Subprotocols: []string{"ferry.v1"},
		HTTPHeader:   http.Header{"Authorization": {"Bearer " + testToken}},
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			rec = &recConn{Conn: c}
			return rec, nil
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := tunnel.Dial(ctx, g.url, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	mux, err := yamux.Client(ws.StreamConn(), tunnel.MuxConfig(tunnel.DefaultWindow))
	if err != nil {
		t.Fatal(err)
	}
	defer mux.Close()
	st, err := mux.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := tunnel.AppendOpenRequest(nil, "redis")
	if _, err := st.Write(req); err != nil {
		t.Fatal(err)
	}
	resp := make([]byte, 4)
	if _, err := io.ReadFull(st, resp); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp, []byte{1, 0, 0, 0}) {
		t.Fatalf("open response %x, want ok", resp)
	}
	got := rec.bytes()
	i := bytes.Index(got, []byte("\r\n\r\n"))
	if i < 0 {
		t.Fatal("no HTTP response in the capture")
	}
	got = got[i+4:]
	if len(got) < len(want) {
		t.Fatalf("captured %x after the handshake, shorter than the doc's %x", got, want)
	}
	got = got[:len(want)]
	// Mask the window update's delta: frame header 2 bytes, then the
	// yamux header whose last four bytes are the delta.
	if len(want) >= 14 && want[3] == 1 && got[3] == 1 {
		t.Logf("window update delta on the wire: %d", binary.BigEndian.Uint32(got[10:14]))
		copy(got[10:14], want[10:14])
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the gateway sent\n%x\nbut docs/PROTOCOL.md says\n%x", got, want)
	}

	// The client's side of the same exchange: its first two messages.
	msgs := rec.clientMessages(t)
	if len(msgs) < 2 || !bytes.Equal(msgs[0], ex["yamux-syn"]) || !bytes.Equal(msgs[1], ex["open-request"]) {
		t.Errorf("the client sent %x, but docs/PROTOCOL.md says %x then %x", msgs, ex["yamux-syn"], ex["open-request"])
	}

	// A refusal: alice may not open postgres.
	st2, err := mux.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	req, _ = tunnel.AppendOpenRequest(nil, "postgres")
	if _, err := st2.Write(req); err != nil {
		t.Fatal(err)
	}
	refusal, err := io.ReadAll(st2)
	if err != nil {
		t.Fatalf("reading the refusal: %v", err)
	}
	if !bytes.Equal(refusal, ex["open-forbidden"]) {
		t.Errorf("the gateway refused with %x, but docs/PROTOCOL.md says %x", refusal, ex["open-forbidden"])
	}
}
