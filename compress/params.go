package compress

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ExtensionName is the registered name of the extension.
const ExtensionName = "permessage-deflate"

// Params are the negotiated parameters of RFC 7692 section 7.1. A window of
// 0 means the parameter was absent (the peer may use 15 bits); 8 to 15 are
// the window sizes in bits.
type Params struct {
	ServerNoContextTakeover bool
	ClientNoContextTakeover bool
	ServerMaxWindowBits     int
	ClientMaxWindowBits     int
}

// String renders p as the value of a Sec-WebSocket-Extensions response.
func (p Params) String() string {
	var b strings.Builder
	b.WriteString(ExtensionName)
	if p.ServerNoContextTakeover {
		b.WriteString("; server_no_context_takeover")
	}
	if p.ClientNoContextTakeover {
		b.WriteString("; client_no_context_takeover")
	}
	if p.ServerMaxWindowBits != 0 {
		fmt.Fprintf(&b, "; server_max_window_bits=%d", p.ServerMaxWindowBits)
	}
	if p.ClientMaxWindowBits != 0 {
		fmt.Fprintf(&b, "; client_max_window_bits=%d", p.ClientMaxWindowBits)
	}
	return b.String()
}

// Extension is one element of a Sec-WebSocket-Extensions header: a name
// and its parameters in order (a parameter without a value has Value "" and
// HasValue false).
type Extension struct {
	Name   string
	Params []Param
}

// Param is one extension parameter.
type Param struct {
	Name     string
	Value    string
	HasValue bool
}

// ParseExtensions parses the values of Sec-WebSocket-Extensions headers
// (RFC 6455 section 9.1; a quoted value is unquoted and must then be a
// token). Names are lowercased.
func ParseExtensions(values []string) ([]Extension, error) {
	var out []Extension
	for _, v := range values {
		p := &extParser{s: v}
		for {
			p.skipSpace()
			if p.done() {
				break
			}
			if p.peek() == ',' { // empty list elements are allowed
				p.i++
				continue
			}
			ext, err := p.extension()
			if err != nil {
				return nil, err
			}
			out = append(out, ext)
			p.skipSpace()
			if p.done() {
				break
			}
			if p.peek() != ',' {
				return nil, fmt.Errorf("compress: extensions %q: expected ',' at offset %d", v, p.i)
			}
			p.i++
		}
	}
	return out, nil
}

type extParser struct {
	s string
	i int
}

func (p *extParser) done() bool { return p.i >= len(p.s) }
func (p *extParser) peek() byte { return p.s[p.i] }
func (p *extParser) skipSpace() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *extParser) token() string {
	start := p.i
	for p.i < len(p.s) && isTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

func (p *extParser) extension() (Extension, error) {
	name := p.token()
	if name == "" {
		return Extension{}, fmt.Errorf("compress: extensions %q: expected a name at offset %d", p.s, p.i)
	}
	ext := Extension{Name: strings.ToLower(name)}
	for {
		p.skipSpace()
		if p.done() || p.peek() != ';' {
			return ext, nil
		}
		p.i++
		p.skipSpace()
		pname := p.token()
		if pname == "" {
			return Extension{}, fmt.Errorf("compress: extensions %q: expected a parameter at offset %d", p.s, p.i)
		}
		param := Param{Name: strings.ToLower(pname)}
		p.skipSpace()
		if !p.done() && p.peek() == '=' {
			p.i++
			p.skipSpace()
			val, err := p.value()
			if err != nil {
				return Extension{}, err
			}
			param.Value, param.HasValue = val, true
		}
		ext.Params = append(ext.Params, param)
	}
}

func (p *extParser) value() (string, error) {
	if p.done() {
		return "", fmt.Errorf("compress: extensions %q: missing value", p.s)
	}
	if p.peek() != '"' {
		v := p.token()
		if v == "" {
			return "", fmt.Errorf("compress: extensions %q: bad value at offset %d", p.s, p.i)
		}
		return v, nil
	}
	p.i++
	var b strings.Builder
	for {
		if p.done() {
			return "", fmt.Errorf("compress: extensions %q: unterminated quoted value", p.s)
		}
		c := p.s[p.i]
		p.i++
		switch c {
		case '"':
			v := b.String()
			for i := 0; i < len(v); i++ {
				if !isTokenChar(v[i]) {
					return "", fmt.Errorf("compress: extensions %q: quoted value %q is not a token", p.s, v)
				}
			}
			if v == "" {
				return "", fmt.Errorf("compress: extensions %q: empty quoted value", p.s)
			}
			return v, nil
		case '\\':
			if p.done() {
				return "", fmt.Errorf("compress: extensions %q: unterminated quoted value", p.s)
			}
			b.WriteByte(p.s[p.i])
			p.i++
		default:
			b.WriteByte(c)
		}
	}
}

func isTokenChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	return !strings.ContainsRune("()<>@,;:\\\"/[]?={}", rune(c))
}

// offer is a permessage-deflate offer's parameters as parsed.
type offer struct {
	serverNoCtx       bool
	clientNoCtx       bool
	serverBits        int // 0: absent
	clientBits        int // 0: absent, -1: present without a value
	clientBitsPresent bool
}

var errMalformed = errors.New("malformed permessage-deflate parameters")

// parseParams checks a permessage-deflate element's parameters: known
// names only, each at most once, values as section 7.1 requires. response
// is true for a server's response, where client_max_window_bits needs a
// value.
func parseParams(params []Param, response bool) (offer, error) {
	var o offer
	seen := map[string]bool{}
	for _, p := range params {
		if seen[p.Name] {
			return o, fmt.Errorf("%w: %s given twice", errMalformed, p.Name)
		}
		seen[p.Name] = true
		switch p.Name {
		case "server_no_context_takeover":
			if p.HasValue {
				return o, fmt.Errorf("%w: server_no_context_takeover takes no value", errMalformed)
			}
			o.serverNoCtx = true
		case "client_no_context_takeover":
			if p.HasValue {
				return o, fmt.Errorf("%w: client_no_context_takeover takes no value", errMalformed)
			}
			o.clientNoCtx = true
		case "server_max_window_bits":
			bits, err := windowBits(p)
			if err != nil {
				return o, err
			}
			if !p.HasValue {
				return o, fmt.Errorf("%w: server_max_window_bits needs a value", errMalformed)
			}
			o.serverBits = bits
		case "client_max_window_bits":
			o.clientBitsPresent = true
			if !p.HasValue {
				if response {
					return o, fmt.Errorf("%w: client_max_window_bits needs a value in a response", errMalformed)
				}
				o.clientBits = -1
				continue
			}
			bits, err := windowBits(p)
			if err != nil {
				return o, err
			}
			o.clientBits = bits
		default:
			return o, fmt.Errorf("%w: unknown parameter %s", errMalformed, p.Name)
		}
	}
	return o, nil
}

func windowBits(p Param) (int, error) {
	if !p.HasValue {
		return 0, nil
	}
	// 1*DIGIT without leading zeros, 8 to 15 (section 7.1.2.1).
	if len(p.Value) > 2 || p.Value[0] == '0' {
		return 0, fmt.Errorf("%w: %s=%s is not 8 to 15", errMalformed, p.Name, p.Value)
	}
	n, err := strconv.Atoi(p.Value)
	if err != nil || n < 8 || n > 15 {
		return 0, fmt.Errorf("%w: %s=%s is not 8 to 15", errMalformed, p.Name, p.Value)
	}
	return n, nil
}

// Options configures compression on one side. The zero value compresses
// messages of 256 bytes or more with context takeover.
type Options struct {
	// Threshold is the smallest message, in bytes, that is compressed
	// (default 256; negative compresses everything).
	Threshold int
	// NoContextTakeover asks for no context takeover in both directions,
	// so that an idle connection holds no compression state at all, at
	// some cost in ratio.
	NoContextTakeover bool
	// Level is the flate level, 1 (fastest) to 9; 0 means DefaultLevel.
	Level int
}

// DefaultLevel is the flate level used by default: on a Redis/JSON stream
// level 2 reaches a wire ratio of 0.207 against level 1's 0.214, gws's
// being 0.209 (scripts/bench-ws -tests mbz, and -zlevel 1 to compare).
const DefaultLevel = 2

// DefaultThreshold is the smallest message compressed by default.
const DefaultThreshold = 256

// Negotiate is the server's side (RFC 7692 section 7.1): it accepts the
// first permessage-deflate offer it can among the client's extensions and
// returns the parameters in force and true, or false to decline (the
// handshake goes on without compression). Malformed offers are declined
// one by one, never fatal.
func Negotiate(exts []Extension, opts Options) (Params, bool) {
	for _, e := range exts {
		if e.Name != ExtensionName {
			continue
		}
		o, err := parseParams(e.Params, false)
		if err != nil {
			continue
		}
		p := Params{
			ServerNoContextTakeover: o.serverNoCtx || opts.NoContextTakeover,
			ClientNoContextTakeover: o.clientNoCtx || opts.NoContextTakeover,
			ServerMaxWindowBits:     o.serverBits,
		}
		// client_max_window_bits limits what the client sends. Ferry's
		// inflater handles any window, so it never asks for less; a value
		// the client offered is echoed so that the client keeps to it.
		if o.clientBits > 0 {
			p.ClientMaxWindowBits = o.clientBits
		}
		return p, true
	}
	return Params{}, false
}

// Offer returns the client's offer for opts: permessage-deflate with
// client_max_window_bits (so the server may limit our window), and the two
// no_context_takeover parameters when opts asks for them.
func Offer(opts Options) string {
	s := ExtensionName + "; client_max_window_bits"
	if opts.NoContextTakeover {
		s += "; server_no_context_takeover; client_no_context_takeover"
	}
	return s
}

// Accepted is the client's side: it checks the server's
// Sec-WebSocket-Extensions response against the offer made with opts and
// returns the parameters in force. ok is false when the server declined.
// Any response the offer did not allow is an error that fails the
// connection (RFC 7692 section 7.1).
func Accepted(values []string, opts Options) (p Params, ok bool, err error) {
	exts, err := ParseExtensions(values)
	if err != nil {
		return Params{}, false, err
	}
	if len(exts) == 0 {
		return Params{}, false, nil
	}
	if len(exts) > 1 || exts[0].Name != ExtensionName {
		names := make([]string, len(exts))
		for i, e := range exts {
			names[i] = e.Name
		}
		return Params{}, false, fmt.Errorf("compress: server accepted extensions %s; only one %s was offered", strings.Join(names, ", "), ExtensionName)
	}
	o, err := parseParams(exts[0].Params, true)
	if err != nil {
		return Params{}, false, fmt.Errorf("compress: server response: %w", err)
	}
	if opts.NoContextTakeover && !o.serverNoCtx {
		return Params{}, false, errors.New("compress: server response lacks server_no_context_takeover, which was offered")
	}
	// client_max_window_bits was offered without a value, so any value
	// 8–15 may come back; server_max_window_bits was not offered, but a
	// server may still limit its own window, which needs nothing from us.
	return Params{
		ServerNoContextTakeover: o.serverNoCtx,
		ClientNoContextTakeover: o.clientNoCtx,
		ServerMaxWindowBits:     o.serverBits,
		ClientMaxWindowBits:     o.clientBits,
	}, true, nil
}
