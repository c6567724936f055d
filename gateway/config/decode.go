package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// Parse reads a config from data, naming file in errors. It starts from the
// defaults (no tokens, no services), decodes every key strictly, checks every
// rule and returns Errors listing every problem, each with its line, column
// and key path. file may be "", as for the embedded default; when it is not,
// relative file paths in the config are made relative to its folder.
func Parse(file string, data []byte) (*Config, error) {
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(data), &top)
	if err != nil {
		e := &Error{File: file, Msg: err.Error()}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			e.Msg = pe.Message
			e.Line, e.Column = syntaxPosition(data, pe.Position)
		}
		return nil, Errors{e}
	}

	c := defaults()
	c.File = file
	d := &decoder{md: md}
	d.fields(top, reflect.ValueOf(c).Elem(), nil)
	for _, p := range c.problems() {
		if !d.failedAt(p.path) {
			d.problems = append(d.problems, p)
		}
	}
	if len(d.problems) > 0 {
		idx := locate(string(data))
		errs := make(Errors, len(d.problems))
		for i, p := range d.problems {
			pos := idx.find(p.path, p.atKey)
			errs[i] = &Error{File: file, Line: pos.line, Column: pos.col, Key: p.path.String(), Msg: p.msg}
		}
		sortErrors(errs)
		return nil, errs
	}
	if file != "" {
		c.resolvePaths(filepath.Dir(file))
	}
	return c, nil
}

// syntaxPosition returns the line and column of a syntax error. The parser's
// byte offset is more precise than its line, which is one too far when the
// error is at the end of a line; the offset counts from after a BOM.
func syntaxPosition(data []byte, p toml.Position) (line, col int) {
	if p.Line <= 0 {
		return 0, 0
	}
	start := p.Start
	for _, bom := range []string{"\xef\xbb\xbf", "\xff\xfe", "\xfe\xff"} {
		if bytes.HasPrefix(data, []byte(bom)) {
			start += len(bom)
			break
		}
	}
	if start < 0 || start > len(data) || (start == 0 && p.Line > 1) {
		return p.Line, 0
	}
	before := data[:start]
	return 1 + bytes.Count(before, []byte("\n")), start - bytes.LastIndexByte(before, '\n')
}

// problem is an error before it has a position.
type problem struct {
	path  keyPath
	atKey bool // point at the key rather than its value (unknown keys)
	msg   string
}

// decoder decodes the primitives of a parsed file into a Config, key by
// key, so that one bad value does not hide the next.
type decoder struct {
	md       toml.MetaData
	problems []problem
	failed   []string // paths whose value was not decoded
}

func (d *decoder) fail(path keyPath, format string, args ...any) {
	d.problems = append(d.problems, problem{path: path, msg: fmt.Sprintf(format, args...)})
	d.failed = append(d.failed, path.String())
}

// failedAt reports whether path is, or is inside, a value that failed to
// decode; Validate's complaints about such a path would only repeat it.
func (d *decoder) failedAt(path keyPath) bool {
	s := path.String()
	for _, f := range d.failed {
		if s == f || strings.HasPrefix(s, f+".") || strings.HasPrefix(s, f+"[") {
			return true
		}
	}
	return false
}

// field is a struct field that a TOML key fills.
type field struct {
	name  string // the toml tag
	index int
	check string // the check tag: a key of checks
}

// fieldsOf lists the fields of struct type t that have a toml tag.
func fieldsOf(t reflect.Type) []field {
	var fs []field
	for i := 0; i < t.NumField(); i++ {
		name := t.Field(i).Tag.Get("toml")
		if name == "" || name == "-" {
			continue
		}
		fs = append(fs, field{name: name, index: i, check: t.Field(i).Tag.Get("check")})
	}
	return fs
}

// fields decodes the keys of a table into the struct rv; a key no field
// has is an error.
func (d *decoder) fields(m map[string]toml.Primitive, rv reflect.Value, path keyPath) {
	fs := fieldsOf(rv.Type())
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		i := slices.Index(names, k)
		if i < 0 {
			d.problems = append(d.problems, problem{path: path.key(k), atKey: true, msg: "unknown key" + suggest(k, names)})
			continue
		}
		d.value(m[k], rv.Field(fs[i].index), path.key(k), fs[i].check)
	}
}

var servicesType = reflect.TypeFor[map[string]*Service]()

// value decodes one value into v, which keeps its default when the value is
// wrong.
func (d *decoder) value(prim toml.Primitive, v reflect.Value, path keyPath, check string) {
	var raw any
	if err := d.md.PrimitiveDecode(prim, &raw); err != nil {
		d.fail(path, "%s", message(err))
		return
	}
	switch p := v.Addr().Interface().(type) {
	case *Duration:
		d.text(prim, raw, p, path, `a duration like "5s"`, true)
		return
	case *ByteSize:
		d.text(prim, raw, p, path, `a size like "16MiB"`, true)
		return
	case *netip.Prefix:
		var t prefixText
		if d.text(prim, raw, &t, path, `a CIDR like "10.0.0.0/8"`, false) {
			*p = t.p
		}
		return
	case *string:
		if check == "" {
			d.basic(prim, raw, v, path, "a string", isString(raw))
			return
		}
		t := checkedText{check: checks[check]}
		if d.text(prim, raw, &t, path, "a string", false) {
			*p = t.s
		}
		return
	}

	switch v.Kind() {
	case reflect.Bool:
		d.basic(prim, raw, v, path, "a boolean", isKind[bool](raw))
	case reflect.Int:
		d.basic(prim, raw, v, path, "an integer", isKind[int64](raw))
	case reflect.Float64:
		d.basic(prim, raw, v, path, "a number", isKind[int64](raw) || isKind[float64](raw))
	case reflect.Struct:
		m, ok := d.table(prim, raw, path)
		if ok {
			d.fields(m, v, path)
		}
	case reflect.Slice:
		want := "an array"
		if v.Type().Elem().Kind() == reflect.Struct && v.Type().Elem() != reflect.TypeFor[netip.Prefix]() {
			want = "an array of tables"
		}
		if !d.expect(raw, path, want, isArray(raw)) {
			return
		}
		var elems []toml.Primitive
		if err := d.md.PrimitiveDecode(prim, &elems); err != nil {
			d.fail(path, "%s", message(err))
			return
		}
		out := reflect.MakeSlice(v.Type(), len(elems), len(elems))
		for i, e := range elems {
			d.value(e, out.Index(i), path.index(i), check)
		}
		v.Set(out)
	case reflect.Map:
		if v.Type() != servicesType {
			panic("config: no decoder for " + v.Type().String())
		}
		m, ok := d.table(prim, raw, path)
		if !ok {
			return
		}
		services := make(map[string]*Service, len(m))
		names := make([]string, 0, len(m))
		for name := range m {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			s := &Service{Name: name, Framing: "raw"}
			services[name] = s
			if sm, ok := d.table(m[name], nil, path.key(name)); ok {
				d.fields(sm, reflect.ValueOf(s).Elem(), path.key(name))
				if _, set := sm["max_message"]; !set && s.Framed() {
					s.MaxMessage = DefaultMaxMessage
				}
			}
		}
		v.Set(reflect.ValueOf(services))
	default:
		panic("config: no decoder for " + v.Type().String())
	}
}

// table decodes a table's keys as primitives. raw is the table's decoded
// value, or nil to have table find it.
func (d *decoder) table(prim toml.Primitive, raw any, path keyPath) (map[string]toml.Primitive, bool) {
	if raw == nil {
		if err := d.md.PrimitiveDecode(prim, &raw); err != nil {
			d.fail(path, "%s", message(err))
			return nil, false
		}
	}
	if !d.expect(raw, path, "a table", isKind[map[string]any](raw)) {
		return nil, false
	}
	var m map[string]toml.Primitive
	if err := d.md.PrimitiveDecode(prim, &m); err != nil {
		d.fail(path, "%s", message(err))
		return nil, false
	}
	return m, true
}

// text decodes a string (or, if orInt, an integer) through a
// TextUnmarshaler, which the TOML decoder calls.
func (d *decoder) text(prim toml.Primitive, raw any, t encoding.TextUnmarshaler, path keyPath, want string, orInt bool) bool {
	if !d.expect(raw, path, want, isString(raw) || orInt && isKind[int64](raw)) {
		return false
	}
	if err := d.md.PrimitiveDecode(prim, t); err != nil {
		d.fail(path, "%s", message(err))
		return false
	}
	return true
}

// basic decodes a string, boolean or number.
func (d *decoder) basic(prim toml.Primitive, raw any, v reflect.Value, path keyPath, want string, ok bool) {
	if !d.expect(raw, path, want, ok) {
		return
	}
	if err := d.md.PrimitiveDecode(prim, v.Addr().Interface()); err != nil {
		d.fail(path, "%s", message(err))
	}
}

// expect records "expected WANT, found ..." unless ok.
func (d *decoder) expect(raw any, path keyPath, want string, ok bool) bool {
	if !ok {
		d.fail(path, "expected %s, found %s", want, describe(raw))
	}
	return ok
}

func isKind[T any](raw any) bool { _, ok := raw.(T); return ok }

func isString(raw any) bool { return isKind[string](raw) }

func isArray(raw any) bool { return isKind[[]any](raw) || isKind[[]map[string]any](raw) }

// describe names a TOML value's type, with the value when it is short.
func describe(raw any) string {
	switch x := raw.(type) {
	case string:
		if utf8.RuneCountInString(x) > 40 {
			x = string([]rune(x)[:40]) + "..."
		}
		return fmt.Sprintf("string %q", x)
	case int64:
		return fmt.Sprintf("integer %d", x)
	case float64:
		return fmt.Sprintf("float %v", x)
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case map[string]any:
		return "table"
	case []map[string]any:
		return "array of tables"
	case []any:
		return "array"
	default:
		return "datetime"
	}
}

// message is the text of a decoding error without the decoder's location,
// which the Error carries.
func message(err error) string {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return pe.Message
	}
	return strings.TrimPrefix(err.Error(), "toml: ")
}

// suggest returns ` (did you mean "x"?)` for the candidate closest to k, if
// one is close.
func suggest(k string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		dist := editDistance(strings.ToLower(k), c)
		if dist < bestD && dist < len(c) {
			best, bestD = c, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
