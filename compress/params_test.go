package compress

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestParseExtensions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string // rendered back, "ERR" for an error
	}{
		{"permessage-deflate", "permessage-deflate"},
		{"permessage-deflate; client_max_window_bits", "permessage-deflate;client_max_window_bits"},
		{"Permessage-Deflate ;Server_Max_Window_Bits = 10 , x-foo", "permessage-deflate;server_max_window_bits=10, x-foo"},
		{`permessage-deflate; server_max_window_bits="10"`, "permessage-deflate;server_max_window_bits=10"},
		{`permessage-deflate; server_max_window_bits="1\0"`, "permessage-deflate;server_max_window_bits=10"},
		{", ,permessage-deflate,", "permessage-deflate"},
		{"", ""},
		{"permessage-deflate; ", "ERR"},
		{"permessage-deflate; a=", "ERR"},
		{`permessage-deflate; a="b c"`, "ERR"},
		{`permessage-deflate; a="b`, "ERR"},
		{"permessage-deflate x", "ERR"},
		{";a", "ERR"},
	}
	for _, tt := range tests {
		exts, err := ParseExtensions([]string{tt.in})
		got := "ERR"
		if err == nil {
			var parts []string
			for _, e := range exts {
				s := e.Name
				for _, p := range e.Params {
					s += ";" + p.Name
					if p.HasValue {
						s += "=" + p.Value
					}
				}
				parts = append(parts, s)
			}
			got = strings.Join(parts, ", ")
		}
		if got != tt.want {
			t.Errorf("ParseExtensions(%q) = %q (err %v), want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestNegotiate is the server's side of RFC 7692 section 7.1 for each
// parameter, with and without values, several offers, and malformed ones.
func TestNegotiate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		offer string
		opts  Options
		want  string // the response, "" when declined
	}{
		{"permessage-deflate", Options{}, "permessage-deflate"},
		{"permessage-deflate; client_max_window_bits", Options{}, "permessage-deflate"},
		{"permessage-deflate; client_max_window_bits=10", Options{}, "permessage-deflate; client_max_window_bits=10"},
		{"permessage-deflate; server_max_window_bits=8", Options{}, "permessage-deflate; server_max_window_bits=8"},
		{"permessage-deflate; server_max_window_bits=15", Options{}, "permessage-deflate; server_max_window_bits=15"},
		{"permessage-deflate; server_no_context_takeover", Options{}, "permessage-deflate; server_no_context_takeover"},
		{"permessage-deflate; client_no_context_takeover", Options{}, "permessage-deflate; client_no_context_takeover"},
		{"permessage-deflate", Options{NoContextTakeover: true}, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=12", Options{},
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=12"},
		// Malformed offers are declined, and the next offer is taken.
		{"permessage-deflate; server_max_window_bits", Options{}, ""},
		{"permessage-deflate; server_max_window_bits=7", Options{}, ""},
		{"permessage-deflate; server_max_window_bits=16", Options{}, ""},
		{"permessage-deflate; server_max_window_bits=010", Options{}, ""},
		{"permessage-deflate; client_max_window_bits=abc", Options{}, ""},
		{"permessage-deflate; server_no_context_takeover=1", Options{}, ""},
		{"permessage-deflate; server_no_context_takeover; server_no_context_takeover", Options{}, ""},
		{"permessage-deflate; foo", Options{}, ""},
		{"permessage-deflate; foo, permessage-deflate; client_max_window_bits", Options{}, "permessage-deflate"},
		{"permessage-deflate; server_max_window_bits=20, permessage-deflate; server_max_window_bits=10", Options{}, "permessage-deflate; server_max_window_bits=10"},
		{"x-webkit-deflate-frame", Options{}, ""},
		{"x-webkit-deflate-frame, permessage-deflate", Options{}, "permessage-deflate"},
	}
	for _, tt := range tests {
		exts, err := ParseExtensions([]string{tt.offer})
		if err != nil {
			t.Fatalf("%q: %v", tt.offer, err)
		}
		p, ok := Negotiate(exts, tt.opts)
		got := ""
		if ok {
			got = p.String()
		}
		if got != tt.want {
			t.Errorf("Negotiate(%q) = %q, want %q", tt.offer, got, tt.want)
		}
	}
}

// TestAccepted is the client's side: responses the offer allowed are
// taken, others fail the connection.
func TestAccepted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		resp    string
		opts    Options
		want    string // "declined", "ERR", or the params
		wantErr string
	}{
		{"", Options{}, "declined", ""},
		{"permessage-deflate", Options{}, "permessage-deflate", ""},
		{"permessage-deflate; server_no_context_takeover; client_no_context_takeover", Options{}, "permessage-deflate; server_no_context_takeover; client_no_context_takeover", ""},
		{"permessage-deflate; client_max_window_bits=8", Options{}, "permessage-deflate; client_max_window_bits=8", ""},
		{"permessage-deflate; server_max_window_bits=12", Options{}, "permessage-deflate; server_max_window_bits=12", ""},
		{"permessage-deflate; client_max_window_bits", Options{}, "ERR", "needs a value in a response"},
		{"permessage-deflate; client_max_window_bits=16", Options{}, "ERR", "not 8 to 15"},
		{"permessage-deflate; foo", Options{}, "ERR", "unknown parameter"},
		{"permessage-deflate, permessage-deflate", Options{}, "ERR", "only one"},
		{"x-foo", Options{}, "ERR", "only one"},
		{"permessage-deflate", Options{NoContextTakeover: true}, "ERR", "lacks server_no_context_takeover"},
		{"permessage-deflate; server_no_context_takeover", Options{NoContextTakeover: true}, "permessage-deflate; server_no_context_takeover", ""},
	}
	for _, tt := range tests {
		var vals []string
		if tt.resp != "" {
			vals = []string{tt.resp}
		}
		p, ok, err := Accepted(vals, tt.opts)
		got := p.String()
		switch {
		case err != nil:
			got = "ERR"
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Accepted(%q): error %q does not mention %q", tt.resp, err, tt.wantErr)
			}
		case !ok:
			got = "declined"
		}
		if got != tt.want {
			t.Errorf("Accepted(%q) = %q (%v), want %q", tt.resp, got, err, tt.want)
		}
	}
}

func FuzzNegotiate(f *testing.F) {
	f.Add("permessage-deflate; client_max_window_bits")
	f.Add("permessage-deflate; server_max_window_bits=10; server_no_context_takeover, x-foo")
	f.Add(`permessage-deflate; server_max_window_bits="1\0"`)
	f.Add("permessage-deflate; foo, permessage-deflate; client_max_window_bits=8")
	f.Fuzz(func(t *testing.T, header string) {
		exts, err := ParseExtensions([]string{header})
		if err != nil {
			return
		}
		p, ok := Negotiate(exts, Options{})
		if !ok {
			return
		}
		// What the server answers must be a response the client accepts.
		back, ok, err := Accepted([]string{p.String()}, Options{})
		if err != nil || !ok || back != p {
			t.Fatalf("offer %q: response %q read back as %+v, %v, %v", header, p, back, ok, err)
		}
		if p.ServerMaxWindowBits != 0 && (p.ServerMaxWindowBits < 8 || p.ServerMaxWindowBits > 15) {
			t.Fatalf("window %d", p.ServerMaxWindowBits)
		}
	})
}

// FuzzInflate feeds arbitrary bytes to the decompressor with a small
// limit: no panic, never more than the limit out, and errors are typed.
func FuzzInflate(f *testing.F) {
	f.Add([]byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, true)
	f.Add([]byte{0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}, false)
	f.Add([]byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}, false)
	c := NewCompressor(Options{Threshold: -1}, 0, false)
	bomb, _ := c.Compress(make([]byte, 1<<20), nil)
	f.Add(append([]byte(nil), bomb...), false)
	c.Done()
	f.Fuzz(func(t *testing.T, data []byte, takeover bool) {
		d := NewDecompressor(takeover)
		for round := 0; round < 2; round++ {
			in := append(append([]byte(nil), data...), deflateTail...)
			if err := d.Begin(in, 4096); err != nil {
				return
			}
			n, err := io.Copy(io.Discard, d)
			d.End()
			if n > 4096 {
				t.Fatalf("inflated %d bytes past a 4096-byte limit", n)
			}
			if err != nil && err != ErrTooBig && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("untyped error %v", err)
			}
		}
	})
}
