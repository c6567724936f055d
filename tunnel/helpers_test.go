package tunnel

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/testnet"
)

// rawFrame builds one frame by hand, independently of putHeader, so tests
// compare the codec against bytes written the RFC's way.
func rawFrame(fin bool, rsv byte, op Opcode, masked bool, payload []byte) []byte {
	b0 := rsv<<4 | byte(op)
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	var m byte
	if masked {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		out = append(out, m|byte(n))
	case n <= 0xFFFF:
		out = append(out, m|126, byte(n>>8), byte(n))
	default:
		out = append(out, m|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if !masked {
		return append(out, payload...)
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	out = append(out, key[:]...)
	for i, c := range payload {
		out = append(out, c^key[i%4])
	}
	return out
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (net.Conn, net.Conn) { return testnet.TCPPair(t) }

// rawPeer pairs a Conn (server when client is false) with the raw TCP end
// of its peer.
func rawPeer(t testing.TB, client bool, limit int64) (*Conn, net.Conn) {
	t.Helper()
	a, b := tcpPair(t)
	c := newConn(a, nil, client, "", limit)
	t.Cleanup(func() { c.CloseNow() })
	return c, b
}

// readRawFrame reads one frame from a raw peer's end, without buffering
// past it: opcode and unmasked payload.
func readRawFrame(t testing.TB, nc net.Conn) (Opcode, []byte) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hb [14]byte
	if _, err := io.ReadFull(nc, hb[:2]); err != nil {
		t.Fatalf("read frame header: %v", err)
	}
	n := 0
	switch hb[1] & 0x7F {
	case 126:
		n = 2
	case 127:
		n = 8
	}
	if hb[1]&0x80 != 0 {
		n += 4
	}
	if _, err := io.ReadFull(nc, hb[2:2+n]); err != nil {
		t.Fatalf("read frame header: %v", err)
	}
	var h header
	if err := readHeader(bufio.NewReader(bytes.NewReader(hb[:2+n])), &h); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, h.length)
	if _, err := io.ReadFull(nc, p); err != nil {
		t.Fatalf("read frame payload: %v", err)
	}
	if h.masked {
		mask(p, h.key)
	}
	return h.opcode, p
}

func echoServerTLS(t testing.TB) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(echoServer(t, nil).Config.Handler)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func tlsConfig(pool *x509.CertPool) *tls.Config { return &tls.Config{RootCAs: pool} }

// httpServer serves Accept on a listener and hands each Conn to handler.
type httpServer struct{ handler func(*Conn) }

func (s *httpServer) serve(ln net.Listener) {
	_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, nil)
		if err != nil {
			return
		}
		s.handler(c)
	}))
}
