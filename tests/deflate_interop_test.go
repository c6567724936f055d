package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrygw/ferry/compress"
	"github.com/ferrygw/ferry/tunnel"
)

// The permessage-deflate (RFC 7692) interop tests run our client against
// each peer's server and each peer's client against our server, with the
// extension on and its four parameters chosen by either side. They check
// that every message comes back byte for byte, that both sides negotiated
// the same parameters (ours from Conn.Compression, the peer's from what its
// script prints), and that compression really happened: the bytes on the
// wire are counted under the TCP connection.

// deflateSizes are the message sizes of the compressed round trips: around
// the default threshold (256), then growing past the 32 KiB window.
var deflateSizes = []int{0, 1, 255, 256, 4 << 10, 64 << 10, 1 << 20, bigMessage}

// payloadKind is what a message holds.
type payloadKind int

const (
	kindText   payloadKind = iota // compressible UTF-8 text
	kindBinary                    // compressible binary, not UTF-8
	kindRandom                    // random binary, which does not compress
)

var payloadKinds = []payloadKind{kindText, kindBinary, kindRandom}

func (k payloadKind) String() string {
	return [...]string{"text", "binary", "random"}[k]
}

func (k payloadKind) messageType() tunnel.MessageType {
	if k == kindText {
		return tunnel.MessageText
	}
	return tunnel.MessageBinary
}

// deflateBigCase reports whether kind, whole or fragmented, runs at 16 MiB
// (in cases that run that size at all): text whole and compressible binary
// fragmented; the peer scripts choose the same. Random data is left out:
// the peers compress it slowly and it adds nothing that 1 MiB does not.
func deflateBigCase(kind payloadKind, fragmented bool) bool {
	return (kind == kindText && !fragmented) || (kind == kindBinary && fragmented)
}

// deflatePayload returns size bytes of kind. Compressible binary is
// 16-byte records, each a big-endian record number and 12 fixed bytes that
// are not UTF-8 (the peer scripts build the same).
func deflatePayload(kind payloadKind, size int) []byte {
	switch kind {
	case kindText:
		return payload(tunnel.MessageText, size)
	case kindRandom:
		b := make([]byte, size)
		rand.Read(b)
		return b
	}
	tail := []byte{0x00, 0xff, 'f', 'e', 'r', 'r', 'y', 0x80, 0x01, 0xfe, 0x7f, 0x00}
	b := make([]byte, 0, size+16)
	for i := uint32(0); len(b) < size; i++ {
		b = binary.BigEndian.AppendUint32(b, i)
		b = append(b, tail...)
	}
	return b[:size]
}

// deflateCase is one choice of permessage-deflate parameters. The same
// table runs in both directions: peerArgs configure the peer's server (what
// it imposes) or its client (what it offers), ours configures our side.
type deflateCase struct {
	name     string
	peerArgs []string // after --deflate
	ours     compress.Options
	want     compress.Params
	// big adds the 16 MiB messages; only a few cases do, to keep the run
	// short.
	big bool
	// unsupported names the peer roles, "<peer> server" or "<peer> client",
	// that cannot run the case, and why.
	unsupported map[string]string
}

// zlibNo8 is why Python's zlib cannot send with an 8-bit window.
const zlibNo8 = "zlib refuses an 8-bit window for raw deflate (zlib.compressobj(wbits=-8) raises), so websockets cannot compress with it"

var deflateCases = []deflateCase{{
	name: "defaults",
	big:  true,
}, {
	name: "ours-no-context-takeover",
	ours: compress.Options{NoContextTakeover: true, Threshold: -1},
	want: compress.Params{ServerNoContextTakeover: true, ClientNoContextTakeover: true},
}, {
	name:     "peer-no-context-takeover",
	peerArgs: []string{"--server-no-context-takeover", "--client-no-context-takeover"},
	want:     compress.Params{ServerNoContextTakeover: true, ClientNoContextTakeover: true},
}, {
	name:     "server-max-window-bits-10",
	peerArgs: []string{"--server-max-window-bits", "10"},
	want:     compress.Params{ServerMaxWindowBits: 10},
}, {
	name:        "server-max-window-bits-8",
	peerArgs:    []string{"--server-max-window-bits", "8"},
	ours:        compress.Options{Threshold: -1},
	want:        compress.Params{ServerMaxWindowBits: 8},
	unsupported: map[string]string{"python-websockets server": zlibNo8},
}, {
	name:     "client-max-window-bits-9",
	peerArgs: []string{"--client-max-window-bits", "9"},
	ours:     compress.Options{Threshold: -1},
	want:     compress.Params{ClientMaxWindowBits: 9},
}, {
	name:        "client-max-window-bits-8",
	peerArgs:    []string{"--client-max-window-bits", "8"},
	want:        compress.Params{ClientMaxWindowBits: 8},
	unsupported: map[string]string{"python-websockets client": zlibNo8},
}, {
	name:     "mixed",
	peerArgs: []string{"--server-no-context-takeover", "--server-max-window-bits", "9", "--client-max-window-bits", "10"},
	ours:     compress.Options{Threshold: -1, Level: 9},
	want:     compress.Params{ServerNoContextTakeover: true, ServerMaxWindowBits: 9, ClientMaxWindowBits: 10},
}, {
	name:     "mixed-client-no-context-takeover",
	peerArgs: []string{"--client-no-context-takeover", "--server-max-window-bits", "12", "--client-max-window-bits", "11"},
	ours:     compress.Options{Level: 6},
	want:     compress.Params{ClientNoContextTakeover: true, ServerMaxWindowBits: 12, ClientMaxWindowBits: 11},
}}

// TestDeflateInteropDial runs our client (tunnel.Dial) against each peer's
// echo server with permessage-deflate.
func TestDeflateInteropDial(t *testing.T) {
	t.Parallel()
	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			p.require(t)
			for _, tc := range deflateCases {
				if tc.unsupported[p.name+" server"] != "" {
					continue // the peer cannot run this case; the table says why
				}
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					srv := startPeerServer(t, p, append([]string{"--deflate"}, tc.peerArgs...)...)
					t.Cleanup(func() {
						if t.Failed() {
							t.Logf("%s server stderr:\n%s", p.name, srv.stderr)
						}
					})
					testDeflateDial(t, srv, tc)
				})
			}
		})
	}
}

func testDeflateDial(t *testing.T, srv *peerServer, tc deflateCase) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wire *countingConn
	opts := &tunnel.DialOptions{
		ReadLimit:   interopReadLimit,
		Compression: &tc.ours,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			wire = &countingConn{Conn: nc}
			return wire, nil
		},
	}
	c, _, err := tunnel.Dial(ctx, srv.url+"/?id="+tc.name, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	params, ok := c.Compression()
	if !ok || params != tc.want {
		t.Fatalf("our Compression() = %+v, %v; want %+v, true", params, ok, tc.want)
	}
	prefix := "conn " + tc.name + " "
	ext := strings.TrimPrefix(srv.stdout.waitLine(t, prefix+"extensions: "), prefix)
	state := strings.TrimPrefix(srv.stdout.waitLine(t, prefix+"deflate: "), prefix)
	if err := checkPeerDeflate(ext, state, tc.want); err != nil {
		t.Fatalf("peer server: %v", err)
	}

	msgs, readDone := startReader(ctx, c)
	var compressible, random int64
	for _, size := range deflateSizes {
		if size == bigMessage && !tc.big {
			continue
		}
		for _, kind := range payloadKinds {
			for _, fragmented := range []bool{false, true} {
				if size == bigMessage && !deflateBigCase(kind, fragmented) {
					continue
				}
				what := fmt.Sprintf("%v message of %d bytes (fragmented %v)", kind, size, fragmented)
				want := deflatePayload(kind, size)
				if kind == kindRandom {
					random += int64(size)
				} else {
					compressible += int64(size)
				}
				typ := kind.messageType()
				if err := send(ctx, c, typ, want, fragmented); err != nil {
					t.Fatalf("send %s: %v", what, err)
				}
				if err := c.Ping(ctx); err != nil {
					t.Fatalf("ping after %s: %v", what, err)
				}
				select {
				case m := <-msgs:
					if m.typ != typ || !bytes.Equal(m.data, want) {
						t.Fatalf("%s came back as %v message of %d bytes, different", what, m.typ, len(m.data))
					}
				case err := <-readDone:
					t.Fatalf("waiting for the echo of %s: %v", what, err)
				}
			}
		}
	}
	if err := c.Close(tunnel.StatusNormalClosure, "done"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-readDone; tunnel.CloseStatus(err) != tunnel.StatusNormalClosure {
		t.Fatalf("after Close, Read returned %v, want a CloseError with 1000", err)
	}
	if err := checkWire("we sent", wire.written.Load(), compressible, random); err != nil {
		t.Error(err)
	}
	if err := checkWire("the peer sent", wire.read.Load(), compressible, random); err != nil {
		t.Error(err)
	}
}

// TestDeflateInteropAccept runs each peer's client against our echo server
// (tunnel.Accept) with permessage-deflate.
func TestDeflateInteropAccept(t *testing.T) {
	t.Parallel()
	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			p.require(t)
			for _, tc := range deflateCases {
				if tc.unsupported[p.name+" client"] != "" {
					continue // the peer cannot run this case; the table says why
				}
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					testDeflateAccept(t, p, tc)
				})
			}
		})
	}
}

func testDeflateAccept(t *testing.T, p *peer, tc deflateCase) {
	s := startCompressingEchoServer(t, &tc.ours)
	args := append([]string{"--deflate"}, tc.peerArgs...)
	if !tc.big {
		args = append(args, "--max", strconv.Itoa(1<<20))
	}
	// Our server echoes half the messages whole, half as fragments.
	res := runPeerClient(t, p, s.url+"?fragment=alternate", args...)
	if res.err != nil {
		t.Fatalf("%s client: %v\nstdout:\n%s\nstderr:\n%s", p.name, res.err, res.stdout, res.stderr)
	}
	if got := res.closeLine(); !strings.HasPrefix(got, "close 1000 ") {
		t.Errorf("%s client ended with %q, want close 1000\nstderr:\n%s", p.name, got, res.stderr)
	}
	var conn acceptedConn
	select {
	case conn = <-s.accepted:
	default:
		t.Fatal("the echo server accepted no connection")
	}
	if !conn.deflate || conn.params != tc.want {
		t.Errorf("our Compression() = %+v, %v; want %+v, true", conn.params, conn.deflate, tc.want)
	}
	if err := checkCloseError(s.wait(t), &tunnel.CloseError{Code: tunnel.StatusNormalClosure}); err != nil {
		t.Errorf("our side: %v", err)
	}
	lines := strings.Split(res.stdout, "\n")
	if len(lines) < 4 {
		t.Fatalf("%s client printed too little:\n%s", p.name, res.stdout)
	}
	if err := checkPeerDeflate(lines[0], lines[1], tc.want); err != nil {
		t.Errorf("peer client: %v", err)
	}
	var compressible, random int64
	sent := lines[len(lines)-3]
	if _, err := fmt.Sscanf(sent, "sent compressible=%d random=%d", &compressible, &random); err != nil {
		t.Fatalf("%s client's line %q: %v", p.name, sent, err)
	}
	if err := checkWire("we sent", conn.wire.written.Load(), compressible, random); err != nil {
		t.Error(err)
	}
	if err := checkWire("the peer sent", conn.wire.read.Load(), compressible, random); err != nil {
		t.Error(err)
	}
}

// checkPeerDeflate checks what a peer script printed about the extension:
// the Sec-WebSocket-Extensions header line (`extensions: VALUE`) must name
// permessage-deflate with exactly the parameters of want, and the state
// line (`deflate: ...`) must show them in force, a window without a limit
// being 15.
func checkPeerDeflate(extLine, stateLine string, want compress.Params) error {
	value, ok := strings.CutPrefix(extLine, "extensions: ")
	if !ok {
		return fmt.Errorf("printed %q, want `extensions: ...`", extLine)
	}
	exts, err := compress.ParseExtensions([]string{value})
	if err != nil {
		return fmt.Errorf("extensions header %q: %v", value, err)
	}
	if len(exts) != 1 || exts[0].Name != compress.ExtensionName {
		return fmt.Errorf("extensions header is %q, want one %s", value, compress.ExtensionName)
	}
	var got compress.Params
	for _, p := range exts[0].Params {
		var bits int
		if p.HasValue {
			if bits, err = strconv.Atoi(p.Value); err != nil {
				return fmt.Errorf("extensions header %q: %v", value, err)
			}
		}
		switch p.Name {
		case "server_no_context_takeover":
			got.ServerNoContextTakeover = true
		case "client_no_context_takeover":
			got.ClientNoContextTakeover = true
		case "server_max_window_bits":
			got.ServerMaxWindowBits = bits
		case "client_max_window_bits":
			got.ClientMaxWindowBits = bits
		default:
			return fmt.Errorf("extensions header %q: unknown parameter %s", value, p.Name)
		}
	}
	if got != want {
		return fmt.Errorf("extensions header %q means %+v, want %+v", value, got, want)
	}
	or15 := func(bits int) int {
		if bits == 0 {
			return 15
		}
		return bits
	}
	wantState := fmt.Sprintf("deflate: server_no_context_takeover=%v client_no_context_takeover=%v server_max_window_bits=%d client_max_window_bits=%d",
		want.ServerNoContextTakeover, want.ClientNoContextTakeover, or15(want.ServerMaxWindowBits), or15(want.ClientMaxWindowBits))
	if stateLine != wantState {
		return fmt.Errorf("state is %q, want %q", stateLine, wantState)
	}
	return nil
}

// checkWire checks that a side compressed what it sent: of the payload
// bytes that crossed the wire in one direction, the random ones may grow a
// little, the compressible ones must at least halve (the payloads compress
// far better than that, even with an 8-bit window), and 64 KiB covers
// the handshake, frame headers and control frames.
func checkWire(dir string, wire, compressible, random int64) error {
	limit := random + random/64 + compressible/2 + 64<<10
	if wire > limit {
		return fmt.Errorf("%s %d bytes on the wire for %d compressible and %d random payload bytes; want at most %d: was the payload compressed?",
			dir, wire, compressible, random, limit)
	}
	return nil
}

// TestDeflatePayloads checks that our compressor finds the compressible
// payloads worth compressing, so that the interop tests exercise our
// deflater and not only our inflater.
func TestDeflatePayloads(t *testing.T) {
	t.Parallel()
	c := compress.NewCompressor(compress.Options{}, 0, true)
	for _, kind := range []payloadKind{kindText, kindBinary} {
		for _, size := range deflateSizes[3:7] {
			if p := deflatePayload(kind, size); !c.Worth(len(p), p) {
				t.Errorf("%v payload of %d bytes is not worth compressing", kind, size)
			}
		}
	}
}

// countingConn counts the bytes read from and written to a net.Conn.
type countingConn struct {
	net.Conn
	read, written atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// CloseWrite passes a half-close on to a TCP connection.
func (c *countingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

type countingListener struct{ net.Listener }

func (l countingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: nc}, nil
}

type wireKey struct{}

// newCountingServer starts an HTTP server on 127.0.0.1 whose connections
// count their bytes; a handler finds its connection with wireOf.
func newCountingServer(h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = countingListener{srv.Listener}
	srv.Config.ConnContext = func(ctx context.Context, nc net.Conn) context.Context {
		return context.WithValue(ctx, wireKey{}, nc)
	}
	srv.Start()
	return srv
}

// wireOf returns the counting connection a request came on.
func wireOf(r *http.Request) *countingConn {
	c, _ := r.Context().Value(wireKey{}).(*countingConn)
	return c
}
