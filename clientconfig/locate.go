package clientconfig

import (
	"net/url"
	"strings"
)

// position is where a key is in the source: its line, and the byte
// columns of the key and of its value (1-based).
type position struct{ line, keyCol, valCol int }

// locate finds the line of every key and table header of a client config,
// under the key paths errors carry ("profiles.work.forward.\"6379\""). The
// decoder keeps no positions; a client config is a few tables of
// `key = value` lines, so one pass over the lines suffices. It assumes the
// source parsed; on anything it does not follow, it records less.
func locate(src string) map[string]position {
	idx := map[string]position{}
	table := ""
	for i, line := range strings.Split(src, "\n") {
		trimmed := strings.TrimLeft(line, " \t")
		indent := len(line) - len(trimmed)
		switch {
		case trimmed == "" || trimmed[0] == '#':
		case trimmed[0] == '[':
			end := strings.LastIndexByte(trimmed, ']')
			if end < 0 {
				continue
			}
			parts := splitKey(strings.Trim(trimmed[:end], "[] \t"))
			table = joinKey(parts)
			// The header also places the tables it implies.
			for n := len(parts); n > 0; n-- {
				if k := joinKey(parts[:n]); idx[k].line == 0 {
					idx[k] = position{line: i + 1, keyCol: indent + 2, valCol: indent + 1}
				}
			}
		default:
			eq := keyEnd(trimmed)
			if eq < 0 {
				continue
			}
			key := joinKey(splitKey(strings.TrimSpace(trimmed[:eq])))
			if table != "" {
				key = table + "." + key
			}
			val := eq + 1
			for val < len(trimmed) && (trimmed[val] == ' ' || trimmed[val] == '\t') {
				val++
			}
			idx[key] = position{line: i + 1, keyCol: indent + 1, valCol: indent + val + 1}
		}
	}
	return idx
}

// find returns the position of path, or of the nearest key that holds it
// (an array's key for one of its elements).
func find(idx map[string]position, path string) position {
	for path != "" {
		if pos, ok := idx[path]; ok {
			return pos
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return position{}
}

// keyEnd returns the index of the = that ends the key of a key = value
// line, skipping quoted keys, or -1.
func keyEnd(s string) int {
	var quote byte
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '=':
			return i
		}
	}
	return -1
}

// splitKey splits a dotted key into its pieces, unquoted.
func splitKey(s string) []string {
	var parts []string
	var b strings.Builder
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				b.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '.':
			parts = append(parts, strings.TrimSpace(b.String()))
			b.Reset()
		case c == ' ' || c == '\t':
		default:
			b.WriteByte(c)
		}
	}
	return append(parts, b.String())
}

// joinKey joins pieces into the path errors show, quoting those that are
// not bare keys.
func joinKey(parts []string) string {
	q := make([]string, len(parts))
	for i, p := range parts {
		q[i] = quoteKey(p)
	}
	return strings.Join(q, ".")
}

// quoteKey returns k bare when TOML allows it, else quoted.
func quoteKey(k string) string {
	if k == "" {
		return `""`
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return `"` + strings.ReplaceAll(k, `"`, `\"`) + `"`
		}
	}
	if strings.Trim(k, "0123456789") == "" {
		return `"` + k + `"` // a port: quoted, as it must be written
	}
	return k
}

func parseURL(s string) (*url.URL, error) { return url.Parse(s) }
