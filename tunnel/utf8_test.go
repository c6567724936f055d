package tunnel

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

func TestUTF8Validator(t *testing.T) {
	t.Parallel()
	long := string(make([]byte, 100)) // ASCII NULs, long enough for the fast path
	tests := []struct {
		in    string
		valid bool
	}{
		{"", true},
		{"hello", true},
		{"κόσμε", true},
		{"\xf0\x90\x80\x80", true},       // U+10000
		{"\xf4\x8f\xbf\xbf", true},       // U+10FFFF
		{"\xef\xbf\xbf", true},           // U+FFFF
		{"\xed\x9f\xbf", true},           // U+D7FF
		{"\xee\x80\x80", true},           // U+E000
		{"\xc0\xaf", false},              // overlong '/'
		{"\xe0\x80\xaf", false},          // overlong
		{"\xf0\x80\x80\xaf", false},      // overlong
		{"\xed\xa0\x80", false},          // U+D800 surrogate
		{"\xed\xbf\xbf", false},          // U+DFFF surrogate
		{"\xf4\x90\x80\x80", false},      // above U+10FFFF
		{"\xf5\x80\x80\x80", false},      // never valid lead
		{"\xff", false},                  // never valid
		{"\x80", false},                  // lone continuation
		{"\xce", false},                  // truncated
		{"κόσμε\xce\xba\xe1\xbd", false}, // truncated at end
		{long + "κόσμε" + long, true},
		{long + "κό\xedσμε" + long, false},
		{long + "\xe2\x82", false},
	}
	for _, tt := range tests {
		if utf8.ValidString(tt.in) != tt.valid {
			t.Fatalf("test table wrong for %q", tt.in)
		}
		// Every way of cutting the input in two gives the same answer.
		for cut := 0; cut <= len(tt.in); cut++ {
			var v utf8Validator
			ok := v.write([]byte(tt.in[:cut])) && v.write([]byte(tt.in[cut:])) && v.complete()
			if ok != tt.valid {
				t.Errorf("%q cut at %d: valid=%v, want %v", tt.in, cut, ok, tt.valid)
			}
		}
	}
}

// TestUTF8FailsFast checks that a prefix no valid text can start with is
// rejected without waiting for the rest of the message.
func TestUTF8FailsFast(t *testing.T) {
	t.Parallel()
	for _, prefix := range []string{"\xc0", "ab\xed\xa0", "\xf4\x90", "\xe0\x80"} {
		var v utf8Validator
		if v.write([]byte(prefix)) {
			t.Errorf("prefix %q accepted", prefix)
		}
	}
	for _, prefix := range []string{"\xce", "\xf0\x90\x80", "\xe2\x82"} {
		var v utf8Validator
		if !v.write([]byte(prefix)) || v.complete() {
			t.Errorf("incomplete prefix %q: wrong state", prefix)
		}
	}
}

// TestUTF8Linear checks that validation costs work linear in the input for
// text that turns invalid late: the bytes handed to utf8.Valid (the byte
// machine steps one byte at a time anyway) are at most twice the input,
// however the text is split and wherever it goes wrong. Counting, unlike
// timing, is exact.
func TestUTF8Linear(t *testing.T) {
	t.Parallel()
	text := func(n int) []byte { // multi-byte text, n bytes, cut on a rune
		unit := []byte("κόσμε ферри 渡し船 🚢 ")
		b := bytes.Repeat(unit, n/len(unit)+1)
		return b[:runeBoundary(b[:n])]
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name  string
		in    []byte
		valid bool
	}{
		{"invalid at the end of 64 KiB", cat(text(64<<10), []byte{0xff}), false},
		{"invalid at the end of 1 MiB", cat(text(1<<20), []byte{0xff}), false},
		{"surrogate at the end", cat(text(64<<10), []byte("\xed\xa0\x80")), false},
		{"truncated rune at the end", cat(text(64<<10), []byte("\xe2\x82")), false},
		{"invalid in the middle", cat(text(32<<10), []byte{0xc0, 0xaf}, text(32<<10)), false},
		{"valid", text(64 << 10), true},
		{"ASCII then invalid", cat(bytes.Repeat([]byte("a"), 64<<10), text(1000), []byte{0x80}), false},
	}
	for _, tt := range tests {
		for _, piece := range []int{len(tt.in), 4096, 1001, 63, 1} {
			var v utf8Validator
			ok := true
			for p := tt.in; len(p) > 0 && ok; {
				n := min(piece, len(p))
				ok = v.write(p[:n])
				p = p[n:]
			}
			ok = ok && v.complete()
			if ok != tt.valid {
				t.Errorf("%s in %d-byte pieces: valid=%v", tt.name, piece, ok)
			}
			if v.validBytes > 2*len(tt.in) {
				t.Errorf("%s in %d-byte pieces: utf8.Valid inspected %d bytes for %d (%.1f per byte)", tt.name, piece, v.validBytes, len(tt.in), float64(v.validBytes)/float64(len(tt.in)))
			}
		}
	}
}
