package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The checks below judge one value on its own. Each is used twice: by the
// decoder, through the TextUnmarshaler types at the end of this file, so
// that a bad value is reported while decoding at its own position; and by
// Validate, so that a Config built in Go is held to the same rules.

// checks maps the `check` tag of a string field (or of a []string field's
// elements) to its check.
var checks = map[string]func(string) error{
	"listen":          checkListen,
	"listen-or-empty": checkListenOrEmpty,
	"path":            checkTunnelPath,
	"origin":          checkOrigin,
	"allowed-host":    checkAllowedHost,
	"sha256":          checkSHA256,
	"token-service":   checkTokenService,
	"backend":         checkBackend,
	"framing":         checkFraming,
	"log-format":      oneOf(LogFormats, "log format"),
	"log-level":       oneOf(LogLevels, "log level"),
}

// checkFraming checks a service's framing.
var checkFraming = oneOf(Framings, "framing")

// oneOf returns a check that s is one of values.
func oneOf(values []string, what string) func(string) error {
	return func(s string) error {
		if slices.Contains(values, s) {
			return nil
		}
		return fmt.Errorf("invalid %s %q: want %s", what, s, quotedList(values))
	}
}

// quotedList writes ["a", "b", "c"] as `"a", "b" or "c"`.
func quotedList(xs []string) string {
	var b strings.Builder
	for i, x := range xs {
		switch {
		case i == 0:
		case i == len(xs)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(x))
	}
	return b.String()
}

// Builtins are the services the gateway serves itself, named in a backend
// as "builtin:NAME".
var Builtins = []string{"echo"}

// checkListen checks a listen address "host:port"; host may be empty (all
// interfaces) and port may be 0 (any free port).
func checkListen(s string) error {
	if s == "" {
		return fmt.Errorf(`invalid address "": want "host:port", e.g. "127.0.0.1:8080"`)
	}
	return checkHostPort(s, 0, false)
}

// checkListenOrEmpty is checkListen where "" means off.
func checkListenOrEmpty(s string) error {
	if s == "" {
		return nil
	}
	return checkListen(s)
}

// checkBackend checks a service's backend: "host:port" or "builtin:NAME".
func checkBackend(s string) error {
	if name, ok := strings.CutPrefix(s, "builtin:"); ok {
		for _, b := range Builtins {
			if name == b {
				return nil
			}
		}
		return fmt.Errorf("invalid backend %q: unknown builtin %q; known: %s", s, name, strings.Join(Builtins, ", "))
	}
	if s == ExposeBackend {
		return nil
	}
	if s == "" {
		return fmt.Errorf(`invalid backend "": want "host:port", "builtin:echo" or "expose"`)
	}
	return checkHostPort(s, 1, true)
}

func checkHostPort(s string, minPort int, needHost bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf(`invalid address %q: want "host:port" (IPv6 as "[::1]:8080")`, s)
	}
	if !isPort(port, minPort) {
		return fmt.Errorf("invalid address %q: port %q is not a number from %d to 65535", s, port, minPort)
	}
	if host == "" && needHost {
		return fmt.Errorf("invalid address %q: no host", s)
	}
	if host != "" && !isHost(host) {
		return fmt.Errorf("invalid address %q: bad host %q", s, host)
	}
	return nil
}

func isPort(s string, min int) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	n, _ := strconv.Atoi(s)
	return n >= min && n <= 65535
}

// isHost reports whether h is an IP address (IPv6 may have a zone) or a
// host name.
func isHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return isHostname(h)
}

// isHostname reports whether h is a DNS name: dot-separated labels of
// letters, digits, "-" and "_" (one trailing dot allowed). An IP address
// shaped name passes too; callers that care test netip.ParseAddr first.
func isHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// checkTunnelPath checks [server] tunnel_path.
func checkTunnelPath(s string) error {
	if !strings.HasPrefix(s, "/") {
		return fmt.Errorf(`invalid path %q: must start with "/"`, s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '?' || c == '#' || c == '%' {
			return fmt.Errorf("invalid path %q: no spaces, control characters, %q, %q or %q", s, "?", "#", "%")
		}
	}
	if c := path.Clean(s); c != s {
		return fmt.Errorf("invalid path %q: not clean; did you mean %q?", s, c)
	}
	if s == "/" || s == "/healthz" || s == "/ferry" || strings.HasPrefix(s, "/ferry/") {
		return fmt.Errorf(`invalid path %q: taken by the gateway's own pages ("/", "/healthz", "/ferry/...")`, s)
	}
	return nil
}

// checkOrigin checks an allowed_origins entry: "scheme://host[:port]" with
// scheme http or https, lowercase, or the pattern "scheme://*.domain[:port]".
func checkOrigin(s string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("invalid origin %q: %s", s, fmt.Sprintf(format, args...))
	}
	if s == "*" {
		return bad(`list each origin, or a pattern like "https://*.example.com"`)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || (strings.ToLower(scheme) != "http" && strings.ToLower(scheme) != "https") {
		return bad(`want "http(s)://host[:port]", e.g. "https://app.example.com"`)
	}
	if s != strings.ToLower(s) {
		return bad("write it in lowercase, as browsers send it")
	}
	if strings.ContainsAny(rest, "/?#") {
		return bad(`an origin has no path, not even "/"`)
	}
	if strings.Contains(rest, "@") {
		return bad("an origin has no user name")
	}
	host := rest
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && i > strings.LastIndexByte(rest, ']') {
		host = rest[:i]
		port := rest[i+1:]
		if !isPort(port, 1) {
			return bad("port %q is not a number from 1 to 65535", port)
		}
		if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
			return bad("leave out the default port :%s; browsers do", port)
		}
	}
	if inner, ok := strings.CutPrefix(host, "["); ok {
		a, err := netip.ParseAddr(strings.TrimSuffix(inner, "]"))
		if err != nil || !strings.HasSuffix(inner, "]") || !a.Is6() || a.Zone() != "" {
			return bad("bad IPv6 host %q", host)
		}
		return nil
	}
	name, wild := strings.CutPrefix(host, "*.")
	_, ipErr := netip.ParseAddr(name)
	if (!isHostname(name) && ipErr != nil) || (wild && ipErr == nil) {
		return bad("bad host %q", host)
	}
	return nil
}

// checkAllowedHost checks an allowed_hosts entry: a host name without a
// port ("gw.example.com"), or the pattern "*.domain" where domain has at
// least two labels ("*.com" would let any rebinding name in).
func checkAllowedHost(s string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("invalid host %q: %s", s, fmt.Sprintf(format, args...))
	}
	switch {
	case s == "":
		return bad(`want a host name, e.g. "gw.example.com"`)
	case s == "*":
		return bad(`list each host name, or a pattern like "*.example.com"`)
	case strings.Contains(s, "/"):
		return bad(`want a host name, not a URL: e.g. "gw.example.com"`)
	}
	if _, err := netip.ParseAddr(s); err == nil || strings.HasPrefix(s, "[") {
		return bad("IP addresses always pass; list host names only")
	}
	if strings.Contains(s, ":") {
		return bad("leave out the port: a listed name passes on every port")
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return bad("write the name in its ASCII form (xn--...), as browsers send it")
		}
	}
	name, wild := strings.CutPrefix(s, "*.")
	if strings.Contains(name, "*") {
		return bad(`a wildcard must be the whole first label, as in "*.example.com"`)
	}
	if !isHostname(name) {
		return bad("not a host name: want dot-separated labels of letters, digits, \"-\" and \"_\"")
	}
	if wild && !strings.Contains(strings.TrimSuffix(name, "."), ".") {
		return bad(`a pattern needs a domain of two labels or more, as in "*.example.com"`)
	}
	return nil
}

// matchOrigin reports whether origin matches an allowed_origins entry: the
// same string, or for "scheme://*.domain[:port]", an origin with the same
// scheme and port whose host is one or more labels below domain.
func matchOrigin(pattern, origin string) bool {
	if pattern == origin {
		return true
	}
	scheme, domain, ok := strings.Cut(pattern, "://*.")
	if !ok {
		return false
	}
	rest, ok := strings.CutPrefix(origin, scheme+"://")
	if !ok {
		return false
	}
	sub, ok := strings.CutSuffix(rest, "."+domain)
	return ok && isHostname(sub)
}

// parsePrefix reads a CIDR, or a bare address as a single-address prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	var p netip.Prefix
	var err error
	if strings.Contains(s, "/") {
		p, err = netip.ParsePrefix(s)
	} else {
		var a netip.Addr
		if a, err = netip.ParseAddr(s); err == nil && a.Zone() == "" {
			p = netip.PrefixFrom(a, a.BitLen())
		} else if err == nil {
			err = errors.New("zone") // a prefix has no zone; do not drop it silently
		}
	}
	if err != nil {
		return netip.Prefix{}, fmt.Errorf(`invalid CIDR %q: want "address/bits" or an address, e.g. "10.0.0.0/8", "fd00::/8"`, s)
	}
	return p, checkPrefix(p, s)
}

// checkPrefix checks a prefix written as s.
func checkPrefix(p netip.Prefix, s string) error {
	switch {
	case !p.IsValid() || p.Addr().Zone() != "":
		return fmt.Errorf(`invalid CIDR %q: want "address/bits" or an address, e.g. "10.0.0.0/8", "fd00::/8"`, s)
	case p.Addr().Is4In6():
		return fmt.Errorf("invalid CIDR %q: write IPv4 ranges in IPv4 form", s)
	case p.Masked() != p:
		return fmt.Errorf("invalid CIDR %q: host bits are set; did you mean %q?", s, p.Masked().String())
	}
	return nil
}

// checkSHA256 checks a token hash. It never repeats the value, which may be
// a token pasted by mistake.
func checkSHA256(s string) error {
	const want = "want 64 lowercase hex digits (the SHA-256 of the token, never the token itself)"
	if len(s) != 64 {
		return fmt.Errorf("%s, got %d characters", want, len(s))
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9' || c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			return fmt.Errorf("%s, got upper case", want)
		default:
			return fmt.Errorf("%s, got a non-hex character at %d", want, i+1)
		}
	}
	return nil
}

var serviceNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidServiceName reports whether s can name a service: 1 to 63 of a-z,
// 0-9, ".", "_", "-", starting with a letter or digit.
func ValidServiceName(s string) bool { return serviceNameRE.MatchString(s) }

// checkServiceName checks a service's name (its key under [services]).
func checkServiceName(s string) error {
	if !ValidServiceName(s) {
		return fmt.Errorf(`invalid service name %q: want 1 to 63 of a-z, 0-9, ".", "_", "-", starting with a letter or digit`, s)
	}
	return nil
}

// checkTokenService checks an entry of a token's services: a service name
// or "*".
func checkTokenService(s string) error {
	if s == "*" {
		return nil
	}
	return checkServiceName(s)
}

// checkedText decodes a string through a check, so that the TOML decoder
// reports a bad value at its own position.
type checkedText struct {
	check func(string) error
	s     string
}

func (t *checkedText) UnmarshalText(b []byte) error {
	if err := t.check(string(b)); err != nil {
		return err
	}
	t.s = string(b)
	return nil
}

// prefixText decodes a CIDR or a bare address.
type prefixText struct{ p netip.Prefix }

func (t *prefixText) UnmarshalText(b []byte) error {
	p, err := parsePrefix(string(b))
	if err != nil {
		return err
	}
	t.p = p
	return nil
}
