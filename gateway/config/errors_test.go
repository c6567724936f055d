package config

import (
	"errors"
	"strings"
	"testing"
)

// lines joins its arguments as the lines of a file, so that a test's line
// numbers can be read off the argument list.
func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

var (
	hashA = strings.Repeat("a", 64)
	hashB = strings.Repeat("b", 64)
)

// parseErrorTests are broken files and every error each must produce, in
// order, as "file:line:col: key: msg".
var parseErrorTests = []struct {
	name string
	src  string
	want []string
}{
	{
		name: "syntax: unclosed table header",
		src:  lines(`[server`, `listen = "127.0.0.1:1"`),
		want: []string{`bad.toml:1:8: expected '.' or ']' to end table name, but got '\n' instead`},
	},
	{
		name: "syntax: duplicate key",
		src:  lines(`[server]`, `listen = "127.0.0.1:1"`, `listen = "127.0.0.1:2"`),
		want: []string{`bad.toml:3:1: Key 'server.listen' has already been defined.`},
	},
	{
		name: "syntax: bare word value",
		src:  lines(`[limits]`, `max_sessions = lots`),
		want: []string{`bad.toml:2:16: expected value but found "lots" instead`},
	},
	{
		name: "unknown keys at every level",
		src: lines(
			`colour = "blue"`,
			`[server]`,
			`Listen = "127.0.0.1:8080"`,
			`[limits]`,
			`max_session = 5`,
			`[[tokens]]`,
			`sha256 = "`+hashA+`"`,
			`services = ["echo"]`,
			`expires = 2026-01-01`,
			`[services.echo]`,
			`backend = "builtin:echo"`,
			`pubic = true`,
			`[servers]`,
		),
		want: []string{
			`bad.toml:1:1: colour: unknown key`,
			`bad.toml:3:1: server.Listen: unknown key (did you mean "listen"?)`,
			`bad.toml:5:1: limits.max_session: unknown key (did you mean "max_sessions"?)`,
			`bad.toml:9:1: tokens[0].expires: unknown key`,
			`bad.toml:12:1: services.echo.pubic: unknown key (did you mean "public"?)`,
			`bad.toml:13:1: servers: unknown key (did you mean "server"?)`,
		},
	},
	{
		name: "wrong types",
		src: lines(
			`server = "127.0.0.1:8080"`,
			`[compression]`,
			`enabled = "yes"`,
			`threshold = 1.5`,
			`[limits]`,
			`max_sessions = "10"`,
			`handshakes_per_second_per_ip = "fast"`,
			`dial_timeout = true`,
			`[network]`,
			`deny = "10.0.0.0/8"`,
			`[admin]`,
			`listen = 9090`,
			`[tokens]`,
			`name = "x"`,
			`[services]`,
			`redis = "127.0.0.1:6379"`,
		),
		want: []string{
			`bad.toml:1:10: server: expected a table, found string "127.0.0.1:8080"`,
			`bad.toml:3:11: compression.enabled: expected a boolean, found string "yes"`,
			`bad.toml:4:13: compression.threshold: expected a size like "16MiB", found float 1.5`,
			`bad.toml:6:16: limits.max_sessions: expected an integer, found string "10"`,
			`bad.toml:7:32: limits.handshakes_per_second_per_ip: expected a number, found string "fast"`,
			`bad.toml:8:16: limits.dial_timeout: expected a duration like "5s", found boolean true`,
			`bad.toml:10:8: network.deny: expected an array, found string "10.0.0.0/8"`,
			`bad.toml:12:10: admin.listen: expected a string, found integer 9090`,
			`bad.toml:13:1: tokens: expected an array of tables, found table`,
			`bad.toml:16:9: services.redis: expected a table, found string "127.0.0.1:6379"`,
		},
	},
	{
		name: "bad values",
		src: lines(
			`[server]`,
			`listen = "localhost"`,
			`tunnel_path = "/tunnel/"`,
			`allowed_origins = [`,
			`  "*",`,
			`  "HTTPS://App.example.com",`,
			`  "https://app.example.com:443",`,
			`  "ftp://x.example.com",`,
			`  "https://app.example.com", # fine`,
			`]`,
			`trusted_proxies = ["10.0.0.1/8", "not-an-ip", "::ffff:10.0.0.0/104"]`,
			`handshake_timeout = "10"`,
			`keepalive = "-5s"`,
			`idle_timeout = "forever"`,
			`[limits]`,
			`max_message_size = "-1MiB"`,
			`[compression]`,
			`threshold = "99999999999TiB"`,
			`[admin]`,
			`listen = "127.0.0.1:http"`,
		),
		want: []string{
			`bad.toml:2:10: server.listen: invalid address "localhost": want "host:port" (IPv6 as "[::1]:8080")`,
			`bad.toml:3:15: server.tunnel_path: invalid path "/tunnel/": not clean; did you mean "/tunnel"?`,
			`bad.toml:5:3: server.allowed_origins[0]: invalid origin "*": list each origin, or a pattern like "https://*.example.com"`,
			`bad.toml:6:3: server.allowed_origins[1]: invalid origin "HTTPS://App.example.com": write it in lowercase, as browsers send it`,
			`bad.toml:7:3: server.allowed_origins[2]: invalid origin "https://app.example.com:443": leave out the default port :443; browsers do`,
			`bad.toml:8:3: server.allowed_origins[3]: invalid origin "ftp://x.example.com": want "http(s)://host[:port]", e.g. "https://app.example.com"`,
			`bad.toml:11:20: server.trusted_proxies[0]: invalid CIDR "10.0.0.1/8": host bits are set; did you mean "10.0.0.0/8"?`,
			`bad.toml:11:34: server.trusted_proxies[1]: invalid CIDR "not-an-ip": want "address/bits" or an address, e.g. "10.0.0.0/8", "fd00::/8"`,
			`bad.toml:11:47: server.trusted_proxies[2]: invalid CIDR "::ffff:10.0.0.0/104": write IPv4 ranges in IPv4 form`,
			`bad.toml:12:21: server.handshake_timeout: invalid duration "10": a number needs a unit, e.g. "10s"`,
			`bad.toml:13:13: server.keepalive: invalid duration "-5s": must not be negative`,
			`bad.toml:14:16: server.idle_timeout: invalid duration "forever": want e.g. "5s", "1m30s" or "0"`,
			`bad.toml:16:20: limits.max_message_size: invalid size "-1MiB": must not be negative`,
			`bad.toml:18:13: compression.threshold: invalid size "99999999999TiB": too large`,
			`bad.toml:20:10: admin.listen: invalid address "127.0.0.1:http": port "http" is not a number from 0 to 65535`,
		},
	},
	{
		name: "allowed hosts",
		src: lines(
			`[server]`,
			`allowed_hosts = [`,
			`  "gw.example.com:8080",`,
			`  "127.0.0.1",`,
			`  "[::1]",`,
			`  "https://gw.example.com",`,
			`  "*",`,
			`  "a.*.example.com",`,
			`  "*.com",`,
			`  "bad name.example",`,
			`  "bücher.example",`,
			`  "",`,
			`  "GW.Example.COM.", # fine: any case, trailing dot`,
			`  "*.dev.example.com", # fine`,
			`  "localhost", # fine, if redundant`,
			`]`,
			`[[tokens]]`,
			`sha256 = "`+hashA+`"`,
			`services = ["*"]`,
			`[server.x]`,
		),
		want: []string{
			`bad.toml:3:3: server.allowed_hosts[0]: invalid host "gw.example.com:8080": leave out the port: a listed name passes on every port`,
			`bad.toml:4:3: server.allowed_hosts[1]: invalid host "127.0.0.1": IP addresses always pass; list host names only`,
			`bad.toml:5:3: server.allowed_hosts[2]: invalid host "[::1]": IP addresses always pass; list host names only`,
			`bad.toml:6:3: server.allowed_hosts[3]: invalid host "https://gw.example.com": want a host name, not a URL: e.g. "gw.example.com"`,
			`bad.toml:7:3: server.allowed_hosts[4]: invalid host "*": list each host name, or a pattern like "*.example.com"`,
			`bad.toml:8:3: server.allowed_hosts[5]: invalid host "a.*.example.com": a wildcard must be the whole first label, as in "*.example.com"`,
			`bad.toml:9:3: server.allowed_hosts[6]: invalid host "*.com": a pattern needs a domain of two labels or more, as in "*.example.com"`,
			`bad.toml:10:3: server.allowed_hosts[7]: invalid host "bad name.example": not a host name: want dot-separated labels of letters, digits, "-" and "_"`,
			`bad.toml:11:3: server.allowed_hosts[8]: invalid host "bücher.example": write the name in its ASCII form (xn--...), as browsers send it`,
			`bad.toml:12:3: server.allowed_hosts[9]: invalid host "": want a host name, e.g. "gw.example.com"`,
			`bad.toml:20:1: server.x: unknown key`,
		},
	},
	{
		name: "allowed hosts of the wrong type",
		src:  lines(`[server]`, `allowed_hosts = "gw.example.com"`, `[limits]`, `max_sessions = 5`),
		want: []string{`bad.toml:2:17: server.allowed_hosts: expected an array, found string "gw.example.com"`},
	},
	{
		name: "tokens and services",
		src: lines(
			`[[tokens]]`,
			`name = "ci"`,
			`sha256 = "`+strings.ToUpper(hashA)+`"`,
			`services = ["redis"]`,
			``,
			`[[tokens]]`,
			`name = "ci"`,
			`sha256 = "`+hashA+`"`,
			`services = ["redis", "postgres"]`,
			``,
			`[[tokens]]`,
			`sha256 = "`+hashA+`"`,
			`services = []`,
			``,
			`[[tokens]]`,
			`name = "raw"`,
			`sha256 = "not-a-hash-but-a-token"`,
			``,
			`[services.redis]`,
			`backend = "127.0.0.1:6379"`,
			``,
			`[services."Bad Name"]`,
			`backend = "builtin:cat"`,
			``,
			`[services.db]`,
			`public = true`,
			``,
			`[services.v6]`,
			`backend = "::1:6379"`,
		),
		want: []string{
			`bad.toml:3:10: tokens[0].sha256: want 64 lowercase hex digits (the SHA-256 of the token, never the token itself), got upper case`,
			`bad.toml:7:8: tokens[1].name: "ci" is also the name of tokens[0]`,
			`bad.toml:9:22: tokens[1].services[1]: unknown service "postgres": no [services.postgres] table`,
			`bad.toml:12:10: tokens[2].sha256: same hash as tokens[1]`,
			`bad.toml:13:12: tokens[2].services: lists no service: name services, or "*" for all (or services to expose, in expose)`,
			`bad.toml:15:1: tokens[3].services: lists no service: name services, or "*" for all (or services to expose, in expose)`,
			`bad.toml:17:10: tokens[3].sha256: want 64 lowercase hex digits (the SHA-256 of the token, never the token itself), got 22 characters`,
			`bad.toml:22:1: services."Bad Name": invalid service name "Bad Name": want 1 to 63 of a-z, 0-9, ".", "_", "-", starting with a letter or digit`,
			`bad.toml:23:11: services."Bad Name".backend: invalid backend "builtin:cat": unknown builtin "cat"; known: echo`,
			`bad.toml:25:1: services.db.backend: missing: want "host:port", "builtin:echo" or "expose"`,
			`bad.toml:29:11: services.v6.backend: invalid address "::1:6379": want "host:port" (IPv6 as "[::1]:8080")`,
		},
	},
	{
		name: "expose",
		src: lines(
			`[limits]`,
			`max_exposers_per_service = 0`,
			`[[tokens]]`,
			`sha256 = "`+strings.Repeat("a", 64)+`"`,
			`expose = ["db", "nope", "*", "laptop"]`,
			`[services.db]`,
			`backend = "127.0.0.1:5432"`,
			`[services.laptop]`,
			`backend = "expose"`,
		),
		want: []string{
			`bad.toml:2:28: limits.max_exposers_per_service: must be at least 1, got 0`,
			`bad.toml:5:11: tokens[0].expose[0]: service "db" has backend "127.0.0.1:5432": only a service with backend = "expose" can be exposed`,
			`bad.toml:5:17: tokens[0].expose[1]: unknown service "nope": no [services.nope] table`,
			`bad.toml:5:25: tokens[0].expose[2]: "*" is not allowed in expose: name each service`,
		},
	},
	{
		name: "framing and max_message",
		src: lines(
			`[services.a]`,
			`backend = "builtin:echo"`,
			`framing = "json"`,
			`[services.b]`,
			`backend = "builtin:echo"`,
			`max_message = "4KiB"`,
			`[services.c]`,
			`backend = "builtin:echo"`,
			`framing = "lines"`,
			`max_message = "2GiB"`,
			`[services.d]`,
			`backend = "builtin:echo"`,
			`framing = "u32be"`,
			`max_message = 0`,
			`[services.e]`,
			`backend = "builtin:echo"`,
			`framing = 7`,
			`max_message = "lots"`,
		),
		want: []string{
			`bad.toml:3:11: services.a.framing: invalid framing "json": want "raw", "lines" or "u32be"`,
			`bad.toml:6:15: services.b.max_message: applies only to framed services: set framing = "lines" or "u32be", or remove it`,
			`bad.toml:10:15: services.c.max_message: must be from 1B to 1GiB, got 2GiB`,
			`bad.toml:14:15: services.d.max_message: must be from 1B to 1GiB, got 0B`,
			`bad.toml:17:11: services.e.framing: expected a string, found integer 7`,
			`bad.toml:18:15: services.e.max_message: invalid size "lots": want e.g. "256B", "64KiB", "16MiB" or a number of bytes`,
		},
	},
	{
		name: "token services",
		src: lines(
			`[[tokens]]`,
			`sha256 = "`+hashA+`"`,
			`services = ["redsi", "*", "No!"]`,
			`[[tokens]]`,
			`services = ["redis"]`,
			`[services.redis]`,
			`backend = "127.0.0.1:6379"`,
		),
		want: []string{
			`bad.toml:3:13: tokens[0].services[0]: unknown service "redsi": no [services.redsi] table (did you mean "redis"?)`,
			`bad.toml:3:22: tokens[0].services[1]: "*" (every service) must be the only entry`,
			`bad.toml:3:27: tokens[0].services[2]: invalid service name "No!": want 1 to 63 of a-z, 0-9, ".", "_", "-", starting with a letter or digit`,
			`bad.toml:4:1: tokens[1].sha256: missing: paste the [[tokens]] block that "ferry token new" prints`,
		},
	},
	{
		name: "pairs and conflicts",
		src: lines(
			`[server]`,
			`listen = "0.0.0.0:8443"`,
			`tls_key = "key.pem"`,
			`[auth]`,
			`jwt_secret_file = "s"`,
			`jwt_public_key_file = "k.pem"`,
			`[admin]`,
			`listen = "0.0.0.0:8443"`,
		),
		want: []string{
			`bad.toml:3:11: server.tls_key: set, but tls_cert is not; set both or neither`,
			`bad.toml:6:23: auth.jwt_public_key_file: jwt_secret_file is set too; set one: jwt_secret_file for HS256, jwt_public_key_file for RS256 or EdDSA`,
			`bad.toml:8:10: admin.listen: same address as server.listen`,
		},
	},
	{
		name: "jwt claims without a key",
		src:  lines(`[auth]`, `jwt_audience = "ferry"`, `jwt_issuer = "me"`),
		want: []string{
			`bad.toml:2:16: auth.jwt_audience: set, but no JWT key is: set jwt_secret_file or jwt_public_key_file`,
			`bad.toml:3:14: auth.jwt_issuer: set, but no JWT key is: set jwt_secret_file or jwt_public_key_file`,
		},
	},
	{
		name: "ranges",
		src: lines(
			`[limits]`,
			`max_sessions = 0`,
			`max_sessions_per_ip = -1`,
			`max_streams_per_session = 0`,
			`max_message_size = "512B"`,
			`handshakes_per_second_per_ip = 0`,
			`max_pending_handshakes = 0`,
			`dial_timeout = "0"`,
			`max_sessions_per_token = 0`,
			`stream_window = "64KiB"`,
			`buffer_budget = "1MiB"`,
			`[server]`,
			`handshake_timeout = 0`,
			`keepalive = "0s"`,
		),
		want: []string{
			`bad.toml:2:16: limits.max_sessions: must be at least 1, got 0`,
			`bad.toml:3:23: limits.max_sessions_per_ip: must be at least 1, got -1`,
			`bad.toml:4:27: limits.max_streams_per_session: must be at least 1, got 0`,
			`bad.toml:5:20: limits.max_message_size: must be from 1KiB to 1GiB, got 512B`,
			`bad.toml:6:32: limits.handshakes_per_second_per_ip: must be a number more than 0, got 0`,
			`bad.toml:7:26: limits.max_pending_handshakes: must be at least 1, got 0`,
			`bad.toml:8:16: limits.dial_timeout: must be more than 0, got 0s`,
			`bad.toml:9:26: limits.max_sessions_per_token: must be at least 1, got 0`,
			`bad.toml:10:17: limits.stream_window: must be from 256KiB (yamux's smallest window) to 16MiB, got 64KiB`,
			`bad.toml:11:17: limits.buffer_budget: must be at least 16MiB, got 1MiB`,
			`bad.toml:13:21: server.handshake_timeout: must be more than 0, got 0s`,
			`bad.toml:14:13: server.keepalive: must be more than 0, got 0s`,
		},
	},
	{
		name: "infinite rate",
		src:  lines(`[limits]`, `handshakes_per_second_per_ip = inf`, `max_message_size = "2GiB"`),
		want: []string{
			`bad.toml:2:32: limits.handshakes_per_second_per_ip: must be a number more than 0, got +Inf`,
			`bad.toml:3:20: limits.max_message_size: must be from 1KiB to 1GiB, got 2GiB`,
		},
	},
	{
		name: "inline tables and arrays",
		src: lines(
			`tokens = [`,
			`  { name = "a", sha256 = "`+hashA+`", services = ["echo"] },`,
			`  { name = "b", sha256 = "`+hashA+`", services = ["echo"], colour = 1 },`,
			`]`,
			`services = { echo = { backend = "builtin:echo" }, x = { backend = "x" } }`,
		),
		want: []string{
			`bad.toml:3:26: tokens[1].sha256: same hash as tokens[0]`,
			`bad.toml:3:115: tokens[1].colour: unknown key`,
			`bad.toml:5:67: services.x.backend: invalid address "x": want "host:port" (IPv6 as "[::1]:8080")`,
		},
	},
	{
		name: "multi-line strings hide nothing",
		src: lines(
			`[services.echo]`,
			`backend = "builtin:echo"`,
			`description = """`,
			`[server]`,
			`listen = "not an address" \"""`,
			`"""`,
			`public = "no"`,
			`[services.other]`,
			`description = '''`,
			`backend = 1'''''`,
			`backend = "127.0.0.1"`,
		),
		want: []string{
			`bad.toml:7:10: services.echo.public: expected a boolean, found string "no"`,
			`bad.toml:11:11: services.other.backend: invalid address "127.0.0.1": want "host:port" (IPv6 as "[::1]:8080")`,
		},
	},
	{
		name: "dotted and quoted keys",
		src: lines(
			`server.listen = "bad"`,
			`services.redis.backend = "127.0.0.1:0"`,
			`[services."redis.main"]`,
			`backend = 5`,
		),
		want: []string{
			`bad.toml:1:17: server.listen: invalid address "bad": want "host:port" (IPv6 as "[::1]:8080")`,
			`bad.toml:2:26: services.redis.backend: invalid address "127.0.0.1:0": port "0" is not a number from 1 to 65535`,
			`bad.toml:4:11: services."redis.main".backend: expected a string, found integer 5`,
		},
	},
	{
		name: "a backend inside the deny list",
		src: lines(
			`[network]`,
			`deny = ["10.0.0.0/8"]`,
			`[services.meta]`,
			`backend = "10.1.2.3:80"`,
			`[services.ok]`,
			`backend = "127.0.0.1:80"`,
		),
		want: []string{
			`bad.toml:4:11: services.meta.backend: 10.1.2.3 is inside network.deny (10.0.0.0/8): every stream to it would be refused`,
		},
	},
	{
		name: "a backend inside the default deny list",
		src:  lines(`[services.meta]`, `backend = "169.254.169.254:80"`),
		want: []string{
			`bad.toml:2:11: services.meta.backend: 169.254.169.254 is inside network.deny (169.254.0.0/16): every stream to it would be refused`,
		},
	},
	{
		name: "CRLF line ends and a byte order mark",
		src:  "\uFEFF[server]\r\n\r\nlisten = \"x\"\r\n",
		want: []string{
			`bad.toml:3:10: server.listen: invalid address "x": want "host:port" (IPv6 as "[::1]:8080")`,
		},
	},
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range parseErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse("bad.toml", []byte(tt.src))
			if c != nil {
				t.Errorf("Parse returned a config with the errors")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse error = %v (%T), want Errors", err, err)
			}
			got := strings.Split(errs.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for _, e := range errs {
				if e.File != "bad.toml" || e.Line == 0 || e.Column == 0 || e.Msg == "" {
					t.Errorf("error without its place: %#v", e)
				}
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		e    Error
		want string
	}{
		{Error{File: "a.toml", Line: 3, Column: 7, Key: "server.listen", Msg: "bad"}, "a.toml:3:7: server.listen: bad"},
		{Error{File: "a.toml", Line: 3, Key: "server.listen", Msg: "bad"}, "a.toml:3: server.listen: bad"},
		{Error{File: "a.toml", Column: 7, Key: "server.listen", Msg: "bad"}, "a.toml: server.listen: bad"},
		{Error{File: "a.toml", Line: 3, Column: 7, Msg: "bad"}, "a.toml:3:7: bad"},
		{Error{Line: 3, Column: 7, Key: "k", Msg: "bad"}, "3:7: k: bad"},
		{Error{Key: "k", Msg: "bad"}, "k: bad"},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%#v.Error() = %q, want %q", tt.e, got, tt.want)
		}
	}
	errs := Errors{{File: "f", Line: 1, Key: "a", Msg: "x"}, {File: "f", Line: 2, Key: "b", Msg: "y"}}
	if got, want := errs.Error(), "f:1: a: x\nf:2: b: y"; got != want {
		t.Errorf("Errors.Error() = %q, want %q", got, want)
	}
	var e *Error
	if !errors.As(error(errs), &e) || e.Key != "a" {
		t.Errorf("errors.As(Errors, *Error) = %v", e)
	}
}
