package clientconfig

import (
	"cmp"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ferrygw/ferry/gateway/config"
)

// keys are the keys of a profile (and of the top level, with profiles);
// client.toml documents each.
var keys = []string{"gateway", "token", "token_file", "ca", "pin", "proxy", "headers", "timeout", "wait", "once", "forward", "expose"}

// problem is an error before it has a position.
type problem struct {
	path  string
	atKey bool // point at the key rather than its value
	msg   string
}

// decoder turns the decoded TOML tables into Profiles, key by key, so that
// one bad value does not hide the next.
type decoder struct {
	dir      string
	problems []problem
}

func (d *decoder) fail(path string, atKey bool, format string, args ...any) {
	d.problems = append(d.problems, problem{path: path, atKey: atKey, msg: fmt.Sprintf(format, args...)})
}

// profile decodes the keys of one table into p; top says whether it is the
// top level, where [profiles] may be.
func (d *decoder) profile(m map[string]any, p *Profile, prefix string, top bool) {
	p.set = map[string]bool{}
	for key, v := range m {
		path := prefix + quoteKey(key)
		str := func() (string, bool) {
			s, ok := v.(string)
			if !ok {
				d.fail(path, false, "want a string, not %s", typeName(v))
			}
			return s, ok
		}
		p.set[key] = true
		switch key {
		case "gateway":
			if s, ok := str(); ok {
				if _, err := CheckGateway(s); err != nil {
					d.fail(path, false, "%v", err)
				}
				p.Gateway = s
			}
		case "token":
			if s, ok := str(); ok {
				p.Token = s
			}
		case "token_file":
			if s, ok := str(); ok {
				p.TokenFile = d.resolve(s)
			}
		case "ca":
			if s, ok := str(); ok {
				p.CA = d.resolve(s)
			}
		case "pin":
			if s, ok := str(); ok {
				p.Pin = s
			}
		case "proxy":
			if s, ok := str(); ok {
				if u, err := parseURL(s); err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https" {
					d.fail(path, false, "%q: want an http:// or https:// URL, like http://proxy:3128", s)
				}
				p.Proxy = s
			}
		case "headers":
			list, ok := v.([]any)
			if !ok {
				d.fail(path, false, `want an array of "Name: value" strings, not %s`, typeName(v))
				continue
			}
			for i, h := range list {
				s, ok := h.(string)
				name, _, cut := strings.Cut(s, ":")
				if !ok || !cut || strings.TrimSpace(name) == "" {
					d.fail(fmt.Sprintf("%s[%d]", path, i), false, `want "Name: value"`)
					continue
				}
				p.Headers = append(p.Headers, s)
			}
		case "timeout", "wait":
			s, ok := str()
			if !ok {
				continue
			}
			var dur config.Duration
			if err := dur.UnmarshalText([]byte(s)); err != nil {
				d.fail(path, false, "%v", err)
			} else if dur.Duration == 0 {
				d.fail(path, false, "want a positive duration, e.g. \"15s\"")
			}
			if key == "timeout" {
				p.Timeout = dur.Duration
			} else {
				p.Wait = dur.Duration
			}
		case "once":
			b, ok := v.(bool)
			if !ok {
				d.fail(path, false, "want true or false, not %s", typeName(v))
			}
			p.Once = b
		case "forward":
			t, ok := v.(map[string]any)
			if !ok {
				d.fail(path, false, `want a table: [%sforward] with lines like "6379" = "redis"`, prefix)
				continue
			}
			for listen, sv := range t {
				fp := path + "." + quoteKey(listen)
				svc, ok := sv.(string)
				if !ok {
					d.fail(fp, false, "want a service name (a string), not %s", typeName(sv))
					continue
				}
				f, err := ParseForward(listen, svc)
				if err != nil {
					d.fail(fp, strings.Contains(err.Error(), "listen address") || strings.HasPrefix(err.Error(), "port"), "%v", err)
					continue
				}
				p.Forwards = append(p.Forwards, f)
			}
			slices.SortFunc(p.Forwards, func(a, b Forward) int { return cmp.Compare(a.Listen, b.Listen) })
			for i := 1; i < len(p.Forwards); i++ {
				if l := p.Forwards[i].Listen; l == p.Forwards[i-1].Listen && !strings.HasSuffix(l, ":0") {
					d.fail(path, false, "%s is given twice", l)
				}
			}
		case "expose":
			t, ok := v.(map[string]any)
			if !ok {
				d.fail(path, false, `want a table: [%sexpose] with lines like web = "127.0.0.1:3000"`, prefix)
				continue
			}
			p.Expose = map[string]string{}
			for svc, av := range t {
				ep := path + "." + quoteKey(svc)
				addr, ok := av.(string)
				if !config.ValidServiceName(svc) {
					d.fail(ep, true, "%q is not a service name (lowercase letters, digits, . _ -)", svc)
					continue
				}
				if _, _, err := net.SplitHostPort(addr); !ok || err != nil {
					d.fail(ep, false, "want the local address host:port to expose, e.g. \"127.0.0.1:3000\"")
					continue
				}
				p.Expose[svc] = addr
			}
		case "profiles":
			if !top {
				d.fail(path, true, "profiles do not nest")
			}
		default:
			d.fail(path, true, "unknown key (want one of %s, or profiles)", strings.Join(keys, ", "))
		}
	}
}

// check finds the problems of a profile as used (merged over the top
// level): keys that exclude each other, TLS settings with ws://.
func (d *decoder) check(p *Profile, prefix string) {
	if p.Token != "" && p.TokenFile != "" && (p.set["token"] || p.set["token_file"]) {
		d.fail(prefix+"token", false, "token and token_file: give one")
	}
	if strings.HasPrefix(p.Gateway, "ws://") {
		for key, v := range map[string]string{"pin": p.Pin, "ca": p.CA} {
			if v != "" {
				d.fail(prefix+key, false, "%s with a ws:// gateway: a plaintext tunnel has no certificate to check; use wss://", key)
			}
		}
	}
}

// resolve makes a path from the file absolute: ~/ is the home folder, and
// a relative path is taken against the file's folder.
func (d *decoder) resolve(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(d.dir, p)
}

// errors places the problems in the source and sorts them by position.
func (d *decoder) errors(file, src string) config.Errors {
	idx := locate(src)
	errs := make(config.Errors, 0, len(d.problems))
	seen := map[string]bool{}
	for _, p := range d.problems {
		pos := find(idx, p.path)
		col := pos.valCol
		if p.atKey {
			col = pos.keyCol
		}
		e := &config.Error{File: file, Line: pos.line, Column: col, Key: p.path, Msg: p.msg}
		if !seen[e.Error()] { // a top-level problem found again in a merged profile
			seen[e.Error()] = true
			errs = append(errs, e)
		}
	}
	slices.SortStableFunc(errs, func(a, b *config.Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column), cmp.Compare(a.Key, b.Key))
	})
	return errs
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "a number"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("%T", v)
}
