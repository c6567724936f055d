package gateway_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrygw/ferry/tunnel"
	"github.com/hashicorp/yamux"
)

// recConn records what is read from a net.Conn (what the gateway sent).
type recConn struct {
	net.Conn
	mu  sync.Mutex
	got bytes.Buffer
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

// TestProtocolDocCapture opens a stream to a real gateway, records the
// bytes the gateway sends, and compares them with the open-ok example of
// docs/PROTOCOL.md. The comparison masks one field: the delta of the
// gateway's window update (bytes 10..13 of its yamux header), which is
// stream_window less 256 KiB less what it had buffered, so depends on the
// config and on timing.
func TestProtocolDocCapture(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- example: open-ok -->\n```hex\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/PROTOCOL.md lacks the open-ok example")
	}
	want, err := hex.DecodeString(strings.Join(strings.Fields(string(m[1])), ""))
	if err != nil {
		t.Fatal(err)
	}

	g := startGateway(t, baseConfig(`
[services.redis]
backend = "`+echoBackend(t)+`"
public = true
`))
	var rec *recConn
	opts := &tunnel.DialOptions{
		Subprotocols: []string{"ferry.v1"},
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
		t.Fatalf("the gateway sent\n%x\nbut docs/PROTOCOL.md says\n%x", got, want)
	}
}
