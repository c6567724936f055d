package tunnel

import (
	"encoding/binary"
	"unicode/utf8"
)

// utf8State is the state of an incremental UTF-8 validator (RFC 3629). It
// fails on the first byte that no valid encoding could contain, so a text
// message split over fragments is rejected as early as the bytes allow.
type utf8State uint8

const (
	u8Accept utf8State = iota // between runes
	u8Tail1                   // one continuation byte 80..BF expected
	u8Tail2                   // two continuation bytes expected
	u8Tail3                   // three continuation bytes expected
	u8E0                      // after E0: A0..BF, then one more
	u8ED                      // after ED: 80..9F (no surrogates), then one more
	u8F0                      // after F0: 90..BF, then two more
	u8F4                      // after F4: 80..8F (not above U+10FFFF), then two more
	u8Reject
)

// utf8Validator validates UTF-8 text given in pieces.
type utf8Validator struct {
	s utf8State
	// validBytes counts the bytes handed to utf8.Valid since the
	// validator was made (tests check that it stays linear in the input).
	validBytes int
}

// utf8Chunk is the most that one utf8.Valid call checks: a chunk that
// fails is walked by the byte machine, which finds the first bad byte, so
// each byte is inspected at most once by each.
const utf8Chunk = 4 << 10

// write feeds p to the validator and reports false as soon as the bytes seen
// so far cannot be the start of valid UTF-8.
//
// Between runes, whole runes go to the standard library's validator, which
// is faster on multi-byte text, in chunks of at most utf8Chunk; only a
// rune cut by the end of p (at most 3 bytes) goes through the byte machine
// (and on to the next piece in v.s). When utf8.Valid rejects a chunk, the byte machine walks that
// chunk to find where it fails, without retrying the fast path inside it:
// work stays linear however late the text goes wrong.
func (v *utf8Validator) write(p []byte) bool {
	s := v.s
	slow := 0 // p[:slow] goes through the byte machine only
	for i := 0; i < len(p); {
		if s == u8Accept {
			// ASCII fast path, 8 bytes at a time.
			for i+8 <= len(p) && binary.LittleEndian.Uint64(p[i:])&0x8080808080808080 == 0 {
				i += 8
			}
			if i == len(p) {
				break
			}
			if i >= slow {
				chunk := p[i:min(len(p), i+utf8Chunk)]
				if end := runeBoundary(chunk); end > 64 {
					v.validBytes += end
					if utf8.Valid(chunk[:end]) {
						i += end
						continue
					}
					slow = i + end
				}
			}
		}
		c := p[i]
		i++
		switch s {
		case u8Accept:
			switch {
			case c < 0x80:
			case c >= 0xC2 && c <= 0xDF:
				s = u8Tail1
			case c == 0xE0:
				s = u8E0
			case c == 0xED:
				s = u8ED
			case c >= 0xE1 && c <= 0xEF:
				s = u8Tail2
			case c == 0xF0:
				s = u8F0
			case c >= 0xF1 && c <= 0xF3:
				s = u8Tail3
			case c == 0xF4:
				s = u8F4
			default:
				s = u8Reject
			}
		case u8Tail1, u8Tail2, u8Tail3:
			if c < 0x80 || c > 0xBF {
				s = u8Reject
			} else {
				s--
			}
		case u8E0:
			if c < 0xA0 || c > 0xBF {
				s = u8Reject
			} else {
				s = u8Tail1
			}
		case u8ED:
			if c < 0x80 || c > 0x9F {
				s = u8Reject
			} else {
				s = u8Tail1
			}
		case u8F0:
			if c < 0x90 || c > 0xBF {
				s = u8Reject
			} else {
				s = u8Tail2
			}
		case u8F4:
			if c < 0x80 || c > 0x8F {
				s = u8Reject
			} else {
				s = u8Tail2
			}
		}
		if s == u8Reject {
			v.s = s
			return false
		}
	}
	v.s = s
	return true
}

// complete reports whether the text ended on a rune boundary.
func (v *utf8Validator) complete() bool { return v.s == u8Accept }

func (v *utf8Validator) reset() { v.s = u8Accept }

// runeBoundary returns the length of the longest prefix of p that does not
// end inside a multi-byte sequence: it backs off at most 3 bytes.
func runeBoundary(p []byte) int {
	end := len(p)
	for k := 1; k <= 3 && k <= len(p); k++ {
		if c := p[len(p)-k]; utf8.RuneStart(c) {
			if c >= 0xC0 && !utf8.FullRune(p[len(p)-k:]) {
				end = len(p) - k
			}
			break
		}
	}
	return end
}
