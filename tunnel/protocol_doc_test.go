package tunnel

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
)

// docExamples returns the hex examples of docs/PROTOCOL.md by name.
func docExamples(t *testing.T) map[string][]byte {
	t.Helper()
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- example: ([a-z-]+) -->\n```hex\n(.*?)```")
	out := map[string][]byte{}
	for _, m := range re.FindAllStringSubmatch(string(doc), -1) {
		b, err := hex.DecodeString(strings.Join(strings.Fields(m[2]), ""))
		if err != nil {
			t.Fatalf("example %s: %v", m[1], err)
		}
		out[m[1]] = b
	}
	return out
}

type yamuxHeader struct {
	version, typ  byte
	flags         uint16
	stream, value uint32
}

func parseYamux(t *testing.T, b []byte) (yamuxHeader, []byte) {
	t.Helper()
	if len(b) < 12 {
		t.Fatalf("yamux header of %d bytes", len(b))
	}
	return yamuxHeader{b[0], b[1], binary.BigEndian.Uint16(b[2:]), binary.BigEndian.Uint32(b[4:]), binary.BigEndian.Uint32(b[8:])}, b[12:]
}

// TestProtocolDocExamples decodes every example of docs/PROTOCOL.md with
// the real codecs and checks it says what the text says.
func TestProtocolDocExamples(t *testing.T) {
	ex := docExamples(t)
	for _, name := range []string{"yamux-syn", "open-request", "open-ok", "open-forbidden"} {
		if ex[name] == nil {
			t.Fatalf("docs/PROTOCOL.md lacks example %s", name)
		}
	}

	h, rest := parseYamux(t, ex["yamux-syn"])
	if h != (yamuxHeader{0, 1, 0x0001, 1, 0}) || len(rest) != 0 {
		t.Errorf("yamux-syn = %+v", h)
	}
	if want := uint32(MuxConfig(DefaultWindow).MaxStreamWindowSize - 256<<10); h.value != want {
		t.Errorf("yamux-syn delta %d, but the window settings give %d", h.value, want)
	}

	h, rest = parseYamux(t, ex["open-request"])
	if h != (yamuxHeader{0, 0, 0, 1, 7}) || int(h.value) != len(rest) {
		t.Errorf("open-request yamux header = %+v", h)
	}
	if svc, err := ReadOpenRequest(bytes.NewReader(rest)); err != nil || svc != "redis" {
		t.Errorf("open-request = %q, %v", svc, err)
	}
	if b, _ := AppendOpenRequest(nil, "redis"); !bytes.Equal(b, rest) {
		t.Errorf("AppendOpenRequest = %x, doc says %x", b, rest)
	}

	var wh header
	br := bufio.NewReader(bytes.NewReader(ex["open-ok"]))
	if err := readHeader(br, &wh); err != nil || !wh.fin || wh.opcode != OpBinary || wh.masked || wh.length != 12 {
		t.Fatalf("open-ok first frame header = %+v, %v", wh, err)
	}
	payload := make([]byte, wh.length)
	io.ReadFull(br, payload)
	if h, _ = parseYamux(t, payload); h != (yamuxHeader{0, 1, 0x0002, 1, 0}) {
		t.Errorf("open-ok window update = %+v", h)
	}
	if err := readHeader(br, &wh); err != nil || !wh.fin || wh.opcode != OpBinary || wh.masked || wh.length != 16 {
		t.Fatalf("open-ok second frame header = %+v, %v", wh, err)
	}
	payload = make([]byte, wh.length)
	io.ReadFull(br, payload)
	h, rest = parseYamux(t, payload)
	if h != (yamuxHeader{0, 0, 0, 1, 4}) {
		t.Errorf("open-ok yamux header = %+v", h)
	}
	if st, msg, err := ReadOpenResponse(bytes.NewReader(rest)); err != nil || st != OpenOK || msg != "" {
		t.Errorf("open-ok = %v %q %v", st, msg, err)
	}

	st, msg, err := ReadOpenResponse(bytes.NewReader(ex["open-forbidden"]))
	if err != nil || st != OpenForbidden || msg != "token alice may not open postgres" {
		t.Errorf("open-forbidden = %v %q %v", st, msg, err)
	}
	if b := AppendOpenResponse(nil, OpenForbidden, msg); !bytes.Equal(b, ex["open-forbidden"]) {
		t.Errorf("AppendOpenResponse = %x", b)
	}
}
