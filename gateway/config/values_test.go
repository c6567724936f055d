package config

import (
	"math"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"5s", 5 * time.Second, ""},
		{"1m30s", 90 * time.Second, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"1h", time.Hour, ""},
		{"0", 0, ""},
		{"0s", 0, ""},
		{"", 0, `invalid duration "": want e.g. "5s", "1m30s" or "0"`},
		{"5", 0, `invalid duration "5": a number needs a unit, e.g. "5s"`},
		{"-5s", 0, `invalid duration "-5s": must not be negative`},
		{"5 s", 0, `invalid duration "5 s": want e.g. "5s", "1m30s" or "0"`},
		{"5d", 0, `invalid duration "5d": want e.g. "5s", "1m30s" or "0"`},
		{"forever", 0, `invalid duration "forever": want e.g. "5s", "1m30s" or "0"`},
		{"99999999999h", 0, `invalid duration "99999999999h": want e.g. "5s", "1m30s" or "0"`},
	} {
		var d Duration
		err := d.UnmarshalText([]byte(tt.in))
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("UnmarshalText(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || d.Duration != tt.want {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", tt.in, d.Duration, err, tt.want)
			continue
		}
		text, _ := d.MarshalText()
		var back Duration
		if err := back.UnmarshalText(text); err != nil || back != d {
			t.Errorf("round trip of %q through %q = %v, %v", tt.in, text, back, err)
		}
	}
}

func TestByteSize(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want ByteSize
		err  string
	}{
		{"256B", 256, ""},
		{"0", 0, ""},
		{"0B", 0, ""},
		{"4096", 4096, ""},
		{"64KiB", 64 << 10, ""},
		{"16MiB", 16 << 20, ""},
		{"16 MiB", 16 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"2TiB", 2 << 40, ""},
		{"16kB", 16000, ""},
		{"16KB", 16000, ""},
		{"16MB", 16e6, ""},
		{"3GB", 3e9, ""},
		{"1TB", 1e12, ""},
		{"9223372036854775807", math.MaxInt64, ""},
		{"8388607TiB", 8388607 << 40, ""},
		{"", 0, `invalid size "": want e.g. "256B", "64KiB", "16MiB" or a number of bytes`},
		{"MiB", 0, `invalid size "MiB": want e.g. "256B", "64KiB", "16MiB" or a number of bytes`},
		{"16mib", 0, `invalid size "16mib": want e.g. "256B", "64KiB", "16MiB" or a number of bytes`},
		{"1.5MiB", 0, `invalid size "1.5MiB": want e.g. "256B", "64KiB", "16MiB" or a number of bytes`},
		{" 16MiB", 0, `invalid size " 16MiB": want e.g. "256B", "64KiB", "16MiB" or a number of bytes`},
		{"16MiB ", 0, `invalid size "16MiB ": want e.g. "256B", "64KiB", "16MiB" or a number of bytes`},
		{"+16", 0, `invalid size "+16": want e.g. "256B", "64KiB", "16MiB" or a number of bytes`},
		{"0x10", 0, `invalid size "0x10": want e.g. "256B", "64KiB", "16MiB" or a number of bytes`},
		{"-1", 0, `invalid size "-1": must not be negative`},
		{"-1MiB", 0, `invalid size "-1MiB": must not be negative`},
		{"9223372036854775808", 0, `invalid size "9223372036854775808": too large`},
		{"8388608TiB", 0, `invalid size "8388608TiB": too large`},
		{"99999999999999999999999B", 0, `invalid size "99999999999999999999999B": too large`},
	} {
		var z ByteSize
		err := z.UnmarshalText([]byte(tt.in))
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("UnmarshalText(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || z != tt.want {
			t.Errorf("UnmarshalText(%q) = %d, %v; want %d", tt.in, z, err, tt.want)
			continue
		}
		text, _ := z.MarshalText()
		var back ByteSize
		if err := back.UnmarshalText(text); err != nil || back != z {
			t.Errorf("round trip of %q through %q = %d, %v", tt.in, text, back, err)
		}
	}
	for z, want := range map[ByteSize]string{0: "0B", 256: "256B", 1024: "1KiB", 16 << 20: "16MiB", 1e6: "1000000B", 3 << 30: "3GiB", 5 << 40: "5TiB", 1536: "1536B"} {
		if got := z.String(); got != want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(z), got, want)
		}
	}
}

// TestChecks runs each value check on good and bad values; the messages
// are checked by TestParseErrors.
func TestChecks(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		check string
		good  []string
		bad   []string
	}{
		{"listen",
			[]string{"127.0.0.1:8080", ":8080", "0.0.0.0:0", "[::1]:443", "[::]:80", "localhost:65535", "[fe80::1%eth0]:80", "gw.example.com.:80"},
			[]string{"", "localhost", "127.0.0.1", "::1:80", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:http", "a b:80", "[::1]", "exa..mple:80", "127.0.0.1:080808"}},
		{"listen-or-empty", []string{"", "127.0.0.1:9090"}, []string{"x", ":"}},
		{"backend",
			[]string{"127.0.0.1:6379", "[::1]:6379", "db.internal:5432", "redis:6379", "builtin:echo", "my_host-1.example:1"},
			[]string{"", ":6379", "127.0.0.1:0", "127.0.0.1", "builtin:", "builtin:cat", "builtin", "http://x:80", "[::1]:65536"}},
		{"path",
			[]string{"/tunnel", "/a/b", "/ferryx", "/healthz2", "/t-1_x.y~"},
			[]string{"", "tunnel", "/", "/tunnel/", "//tunnel", "/a/../b", "/a/./b", "/healthz", "/ferry", "/ferry/tunnel", "/t?x", "/t#x", "/t x", "/t%20", "/t\x00"}},
		{"origin",
			[]string{"https://app.example.com", "http://localhost:3000", "https://*.example.com", "https://*.example.com:8443", "http://127.0.0.1:8080", "http://[::1]:8080", "https://xn--bcher-kva.example"},
			[]string{"*", "", "app.example.com", "https://", "ftp://a.example.com", "HTTPS://a.example.com", "https://A.example.com", "https://a.example.com/", "https://a.example.com/x", "https://a.example.com?x", "https://u@a.example.com", "http://a.example.com:80", "https://a.example.com:443", "https://a.example.com:0", "https://a.example.com:x", "https://*", "https://*.*.example.com", "https://a.*.example.com", "https://*.127.0.0.1", "http://[::1", "http://[zz]:80", "http://::1", "null", "https://a..b"}},
		{"sha256",
			[]string{hashA, HashToken("x")},
			[]string{"", hashA[1:], hashA + "a", "A" + hashA[1:], "g" + hashA[1:], " " + hashA[1:]}},
		{"token-service",
			[]string{"*", "redis", "a", "0", "a.b_c-d", "a" + strings.Repeat("b", 62)},
			[]string{"", "**", "Redis", ".a", "-a", "_a", "a b", "a/b", "a*", "é", "a" + strings.Repeat("b", 63)}},
	} {
		check := checks[tt.check]
		for _, s := range tt.good {
			if err := check(s); err != nil {
				t.Errorf("%s(%q) = %v, want nil", tt.check, s, err)
			}
		}
		for _, s := range tt.bad {
			if err := check(s); err == nil {
				t.Errorf("%s(%q) = nil, want an error", tt.check, s)
			}
		}
	}
}

func TestParsePrefix(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"10.0.0.0/8":      "10.0.0.0/8",
		"10.1.2.3":        "10.1.2.3/32",
		"::1":             "::1/128",
		"fd00::/8":        "fd00::/8",
		"0.0.0.0/0":       "0.0.0.0/0",
		"10.0.0.1/8":      "",
		"10.0.0.0/33":     "",
		"fe80::1%eth0":    "",
		"::ffff:10.0.0.1": "",
		"10.0.0.0/":       "",
		"x":               "",
		"":                "",
	} {
		p, err := parsePrefix(in)
		if want == "" {
			if err == nil {
				t.Errorf("parsePrefix(%q) = %v, want an error", in, p)
			}
		} else if err != nil || p.String() != want {
			t.Errorf("parsePrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
}

func TestAllowsOrigin(t *testing.T) {
	t.Parallel()
	s := Server{AllowedOrigins: []string{"https://app.example.com", "https://*.example.org", "http://*.dev.test:8080"}}
	for origin, want := range map[string]bool{
		"https://app.example.com":      true,
		"http://app.example.com":       false,
		"https://app.example.com:8443": false,
		"https://x.app.example.com":    false,
		"https://a.example.org":        true,
		"https://a.b.example.org":      true,
		"https://example.org":          false,
		"https://.example.org":         false,
		"https://a.example.org:443":    false,
		"http://a.example.org":         false,
		"https://evilexample.org":      false,
		"https://a.example.org.evil":   false,
		"https://a/b.example.org":      false,
		"http://x.dev.test:8080":       true,
		"http://x.dev.test":            false,
		"null":                         false,
		"":                             false,
	} {
		if got := s.AllowsOrigin(origin); got != want {
			t.Errorf("AllowsOrigin(%q) = %v, want %v", origin, got, want)
		}
	}
}

func TestAllowsHost(t *testing.T) {
	t.Parallel()
	s := Server{AllowedHosts: []string{"GW.Example.com.", "*.dev.example.org"}}
	for name, want := range map[string]bool{
		"gw.example.com":         true,
		"x.gw.example.com":       false,
		"example.com":            false,
		"a.dev.example.org":      true,
		"a.b.dev.example.org":    true,
		"dev.example.org":        false,
		".dev.example.org":       false,
		"a..dev.example.org":     false,
		"evildev.example.org":    false,
		"a.dev.example.org.evil": false,
		"a/b.dev.example.org":    false,
		"":                       false,
	} {
		if got := s.AllowsHost(name); got != want {
			t.Errorf("AllowsHost(%q) = %v, want %v", name, got, want)
		}
	}
	for _, ok := range []string{"gw.example.com", "GW.example.COM", "gw.example.com.", "*.example.com", "x_y.example", "localhost", "xn--bcher-kva.example"} {
		if err := checkAllowedHost(ok); err != nil {
			t.Errorf("checkAllowedHost(%q): %v", ok, err)
		}
	}
}

func TestDenies(t *testing.T) {
	t.Parallel()
	n := Network{Deny: defaultDeny()}
	for addr, want := range map[string]bool{
		"169.254.169.254":        true,
		"::ffff:169.254.169.254": true,
		"100.100.100.200":        true,
		"fd00:ec2::254":          true,
		"fe80::1%eth0":           true,
		"0.0.0.0":                true,
		"224.0.0.1":              true,
		"ff02::1":                true,
		"127.0.0.1":              false,
		"::1":                    false,
		"10.0.0.1":               false,
		"100.100.100.201":        false,
		"fd00:ec2::253":          false,
	} {
		if got := n.Denies(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Denies(%s) = %v, want %v", addr, got, want)
		}
	}
	for _, p := range defaultDeny() {
		if err := checkPrefix(p, p.String()); err != nil {
			t.Errorf("default deny entry: %v", err)
		}
	}
}

func TestTokenAllows(t *testing.T) {
	t.Parallel()
	some := Token{Services: []string{"redis", "pg"}}
	all := Token{Services: []string{"*"}}
	for _, tt := range []struct {
		t       Token
		service string
		want    bool
	}{
		{some, "redis", true}, {some, "pg", true}, {some, "echo", false}, {some, "*", false},
		{all, "redis", true}, {all, "anything", true}, {Token{}, "redis", false},
	} {
		if got := tt.t.Allows(tt.service); got != tt.want {
			t.Errorf("%v.Allows(%q) = %v, want %v", tt.t.Services, tt.service, got, tt.want)
		}
	}
}

func TestHashToken(t *testing.T) {
	t.Parallel()
	// SHA-256 of "abc", FIPS 180-2 appendix B.1.
	if got, want := HashToken("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Errorf("HashToken(abc) = %s, want %s", got, want)
	}
	if err := checkSHA256(HashToken(strconv.Itoa(42))); err != nil {
		t.Errorf("HashToken output fails checkSHA256: %v", err)
	}
}
