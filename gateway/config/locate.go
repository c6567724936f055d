package config

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// The TOML decoder knows where each key is, but it keeps one position per
// dotted key name, so every [[tokens]] entry shares the position of the last
// one, and MetaData.Undecoded has no positions at all. The locator below
// reads the source once more, after the decoder has accepted it, and records
// where every key, table header and array element starts, under the same key
// paths that errors carry ("tokens[1].sha256", "server.allowed_origins[0]").
// It assumes valid TOML; on anything else it records less, never panics.

// keyPath is a key as a list of pieces, each a bare or quoted key or an index
// such as "[2]". Its String is the path errors show.
type keyPath []string

// key returns p extended by the key k, quoted when it is not a bare key.
func (p keyPath) key(k string) keyPath { return append(p[:len(p):len(p)], quoteKey(k)) }

// index returns p extended by the array index i.
func (p keyPath) index(i int) keyPath {
	return append(p[:len(p):len(p)], "["+strconv.Itoa(i)+"]")
}

func (p keyPath) String() string {
	var b strings.Builder
	for i, piece := range p {
		if i > 0 && !strings.HasPrefix(piece, "[") {
			b.WriteByte('.')
		}
		b.WriteString(piece)
	}
	return b.String()
}

// quoteKey returns k as TOML writes it: bare when it can be, else quoted.
func quoteKey(k string) string {
	if k == "" {
		return `""`
	}
	for i := 0; i < len(k); i++ {
		if !isBareKeyChar(k[i]) {
			return strconv.Quote(k)
		}
	}
	return k
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// position is a 1-based line and byte column.
type position struct{ line, col int }

// spot is where a key was seen: key is where its name starts (for a table
// header, its "["), val where its value starts.
type spot struct{ key, val position }

// index maps key paths to where they appear in the source.
type index map[string]spot

// find returns the position for an error about path: the value's position
// (or the key's, when atKey), else the position of the nearest enclosing key
// or table that appears in the source.
func (x index) find(path keyPath, atKey bool) position {
	for n := len(path); n > 0; n-- {
		if sp, ok := x[path[:n].String()]; ok {
			if atKey && n == len(path) {
				return sp.key
			}
			return sp.val
		}
	}
	return position{}
}

// locate builds the index of src, which the TOML parser has accepted.
func locate(src string) index {
	l := &locator{s: strings.TrimPrefix(src, "\uFEFF"), line: 1, x: index{}, arrays: map[string]int{}}
	l.document()
	return l.x
}

type locator struct {
	s         string
	i         int // next byte
	line      int // line of s[i]
	lineStart int // offset of the first byte of this line
	x         index
	arrays    map[string]int // array-of-tables path -> entries seen so far
}

func (l *locator) eof() bool { return l.i >= len(l.s) }

func (l *locator) pos() position { return position{l.line, l.i - l.lineStart + 1} }

// advance moves past one byte, keeping line count.
func (l *locator) advance() {
	if l.s[l.i] == '\n' {
		l.line++
		l.lineStart = l.i + 1
	}
	l.i++
}

// skipBlank skips spaces and tabs.
func (l *locator) skipBlank() {
	for !l.eof() && (l.s[l.i] == ' ' || l.s[l.i] == '\t') {
		l.i++
	}
}

// skipLine skips to the start of the next line.
func (l *locator) skipLine() {
	for !l.eof() && l.s[l.i] != '\n' {
		l.i++
	}
	if !l.eof() {
		l.advance()
	}
}

// skipSpace skips whitespace, newlines and comments.
func (l *locator) skipSpace() {
	for !l.eof() {
		switch l.s[l.i] {
		case ' ', '\t', '\r', '\n':
			l.advance()
		case '#':
			l.skipLine()
		default:
			return
		}
	}
}

// set records sp for path, replacing what was there.
func (l *locator) set(path keyPath, sp spot) { l.x[path.String()] = sp }

// setIfNew records sp for path and its parents (tables a dotted key or header
// defines implicitly) unless they were recorded already.
func (l *locator) setIfNew(path keyPath, sp spot) {
	for n := 1; n <= len(path); n++ {
		k := path[:n].String()
		if _, ok := l.x[k]; !ok {
			l.x[k] = sp
		}
	}
}

func (l *locator) document() {
	var table keyPath
	for {
		l.skipSpace()
		if l.eof() {
			return
		}
		start := l.i
		if l.s[l.i] == '[' {
			table = l.header()
		} else {
			l.keyValue(table)
		}
		l.skipLine() // a comment, or the time part of a datetime
		if l.i == start {
			l.i++ // cannot happen on valid TOML; never loop
		}
	}
}

// header reads "[a.b]" or "[[a.b]]" and returns the table's path.
func (l *locator) header() keyPath {
	p := l.pos()
	l.i++
	array := !l.eof() && l.s[l.i] == '['
	if array {
		l.i++
	}
	keys := l.key()
	var path keyPath
	for n, k := range keys {
		path = path.key(k)
		base := path.String()
		if array && n == len(keys)-1 {
			c := l.arrays[base]
			l.arrays[base] = c + 1
			l.setIfNew(path, spot{p, p})
			path = path.index(c)
		} else if c, ok := l.arrays[base]; ok && c > 0 {
			path = path.index(c - 1)
		}
	}
	if len(path) > 0 {
		l.setIfNew(path[:len(path)-1], spot{p, p})
		l.set(path, spot{p, p})
	}
	return path
}

// keyValue reads "key = value" inside table.
func (l *locator) keyValue(table keyPath) {
	kp := l.pos()
	keys := l.key()
	l.skipBlank()
	if l.eof() || l.s[l.i] != '=' || len(keys) == 0 {
		return
	}
	l.i++
	l.skipBlank()
	path := table
	for _, k := range keys {
		path = path.key(k)
	}
	l.setIfNew(path[:len(path)-1], spot{kp, kp})
	l.set(path, spot{kp, l.pos()})
	l.value(path)
}

// key reads a dotted key and returns its parts.
func (l *locator) key() []string {
	var keys []string
	for {
		l.skipBlank()
		if l.eof() {
			return keys
		}
		switch l.s[l.i] {
		case '"':
			keys = append(keys, unquoteBasic(l.str()))
		case '\'':
			s := l.str()
			keys = append(keys, strings.Trim(s, "'"))
		default:
			start := l.i
			for !l.eof() && !strings.ContainsRune(" \t.=[]\"'#,{}\r\n", rune(l.s[l.i])) {
				l.i++
			}
			if l.i == start {
				return keys
			}
			keys = append(keys, l.s[start:l.i])
		}
		l.skipBlank()
		if l.eof() || l.s[l.i] != '.' {
			for !l.eof() && l.s[l.i] == ']' { // end of a header
				l.i++
			}
			return keys
		}
		l.i++
	}
}

// value skips one value, recording array elements and inline table keys.
func (l *locator) value(path keyPath) {
	if l.eof() {
		return
	}
	switch l.s[l.i] {
	case '"', '\'':
		l.str()
	case '[':
		l.advance()
		n, want := 0, true
		for {
			l.skipSpace()
			if l.eof() {
				return
			}
			switch l.s[l.i] {
			case ']':
				l.i++
				return
			case ',':
				l.i++
				n++
				want = true
			default:
				if want {
					el := path.index(n)
					p := l.pos()
					l.set(el, spot{p, p})
					l.value(el)
					want = false
				} else {
					l.bare() // the time of a "date time"
				}
			}
		}
	case '{':
		l.advance()
		for {
			l.skipSpace()
			if l.eof() {
				return
			}
			switch l.s[l.i] {
			case '}':
				l.i++
				return
			case ',':
				l.i++
			default:
				start := l.i
				l.keyValue(path)
				if l.i == start {
					l.i++
				}
			}
		}
	default:
		l.bare()
	}
}

// bare skips a number, boolean, date or time.
func (l *locator) bare() {
	start := l.i
	for !l.eof() && !strings.ContainsRune(" \t\r\n,]}#", rune(l.s[l.i])) {
		l.i++
	}
	if l.i == start {
		l.i++
	}
}

// str skips a string of any of TOML's four kinds and returns it with its
// quotes.
func (l *locator) str() string {
	start := l.i
	q := l.s[l.i]
	if strings.HasPrefix(l.s[l.i:], strings.Repeat(string(q), 3)) {
		l.i += 3
		for !l.eof() {
			if q == '"' && l.s[l.i] == '\\' && l.i+1 < len(l.s) {
				l.advance()
				l.advance()
				continue
			}
			if strings.HasPrefix(l.s[l.i:], strings.Repeat(string(q), 3)) {
				l.i += 3
				for extra := 0; extra < 2 && !l.eof() && l.s[l.i] == q; extra++ {
					l.i++ // up to two quotes may end the content
				}
				break
			}
			l.advance()
		}
		return l.s[start:l.i]
	}
	l.i++
	for !l.eof() && l.s[l.i] != q && l.s[l.i] != '\n' {
		if q == '"' && l.s[l.i] == '\\' && l.i+1 < len(l.s) {
			l.i++
		}
		l.i++
	}
	if !l.eof() && l.s[l.i] == q {
		l.i++
	}
	return l.s[start:l.i]
}

// unquoteBasic decodes a TOML basic string with its quotes; what it cannot
// decode it returns without the quotes.
func unquoteBasic(s string) string {
	if len(s) < 2 {
		return s
	}
	body := s[1 : len(s)-1]
	if !strings.Contains(body, `\`) {
		return body
	}
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c != '\\' || i+1 == len(body) {
			b.WriteByte(c)
			continue
		}
		i++
		switch body[i] {
		case 'b':
			b.WriteByte('\b')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'f':
			b.WriteByte('\f')
		case 'r':
			b.WriteByte('\r')
		case 'e':
			b.WriteByte(0x1b)
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[body[i]]
			if i+1+n <= len(body) {
				if v, err := strconv.ParseUint(body[i+1:i+1+n], 16, 32); err == nil && utf8.ValidRune(rune(v)) {
					b.WriteRune(rune(v))
					i += n
					continue
				}
			}
			b.WriteByte('\\')
			b.WriteByte(body[i])
		default:
			b.WriteByte(body[i])
		}
	}
	return b.String()
}
