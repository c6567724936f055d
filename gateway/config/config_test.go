package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const exampleFile = "../../gateway.toml"

func TestEmptyFileIsDefaults(t *testing.T) {
	t.Parallel()
	c, err := Parse("empty.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := defaults()
	want.File = "empty.toml"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Parse of an empty file = %+v, want the defaults %+v", c, want)
	}
	// The documented defaults, spelled out once more.
	s, l := c.Server, c.Limits
	for _, tt := range []struct {
		name      string
		got, want any
	}{
		{"listen", s.Listen, "127.0.0.1:8080"},
		{"tunnel_path", s.TunnelPath, "/tunnel"},
		{"allowed_origins", len(s.AllowedOrigins), 0},
		{"allowed_hosts", len(s.AllowedHosts), 0},
		{"trusted_proxies", len(s.TrustedProxies), 0},
		{"tls", s.TLSCert + s.TLSKey, ""},
		{"handshake_timeout", s.HandshakeTimeout.Duration, 10 * time.Second},
		{"keepalive", s.Keepalive.Duration, 25 * time.Second},
		{"idle_timeout", s.IdleTimeout.Duration, time.Duration(0)},
		{"drain_timeout", s.DrainTimeout.Duration, 30 * time.Second},
		{"compression", c.Compression, Compression{Enabled: true, Threshold: 256, ContextTakeover: true}},
		{"max_sessions", l.MaxSessions, 10000},
		{"max_sessions_per_ip", l.MaxSessionsPerIP, 100},
		{"max_sessions_per_token", l.MaxSessionsPerToken, 100},
		{"max_streams_per_session", l.MaxStreamsPerSession, 64},
		{"max_message_size", l.MaxMessageSize, 512 * KiB},
		{"stream_window", l.StreamWindow, 256 * KiB},
		{"buffer_budget", l.BufferBudget, 1 * GiB},
		{"handshakes_per_second_per_ip", l.HandshakesPerSecondPerIP, 20.0},
		{"max_pending_handshakes", l.MaxPendingHandshakes, 1000},
		{"dial_timeout", l.DialTimeout.Duration, 5 * time.Second},
		{"auth", c.Auth, Auth{}},
		{"deny", len(c.Network.Deny), 7},
		{"admin", c.Admin, Admin{}},
		{"tokens", len(c.Tokens), 0},
		{"services", len(c.Services), 0},
	} {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("default %s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestDefault(t *testing.T) {
	t.Parallel()
	c := Default()
	if c.File != "" || c.Server.Listen != "127.0.0.1:8080" {
		t.Errorf("Default: File %q, listen %q", c.File, c.Server.Listen)
	}
	echo := c.Services["echo"]
	if len(c.Services) != 1 || echo == nil || echo.Name != "echo" || echo.Backend != "builtin:echo" ||
		echo.Builtin() != "echo" || !echo.Public || echo.Description == "" {
		t.Errorf("Default services = %+v, want one public builtin:echo with a description", c.Services)
	}
	if len(c.Tokens) != 0 {
		t.Errorf("Default has tokens: %+v", c.Tokens)
	}
	want := defaults()
	want.Services = c.Services
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Default differs from the defaults beyond its services:\n%+v\n%+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	c.Services["x"] = &Service{Name: "x"}
	if len(Default().Services) != 1 {
		t.Error("Default returns a shared Config")
	}
	if string(DefaultTOML()) != string(defaultTOML) {
		t.Error("DefaultTOML differs from the embedded file")
	}
}

func TestExampleFile(t *testing.T) {
	t.Parallel()
	c, err := Load(exampleFile)
	if err != nil {
		t.Fatalf("%s:\n%v", exampleFile, err)
	}
	// Every table shows its defaults.
	d := defaults()
	for _, tt := range []struct {
		name      string
		got, want any
	}{
		{"server", c.Server, d.Server}, {"compression", c.Compression, d.Compression}, {"limits", c.Limits, d.Limits},
		{"auth", c.Auth, d.Auth}, {"network", c.Network, d.Network}, {"admin", c.Admin, d.Admin},
	} {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("[%s] in %s = %+v, want the defaults %+v", tt.name, exampleFile, tt.got, tt.want)
		}
	}
	if len(c.Tokens) == 0 || len(c.Services) < 3 {
		t.Errorf("%s: want example tokens and services, got %d and %d", exampleFile, len(c.Tokens), len(c.Services))
	}
	for _, name := range []string{"redis", "postgres", "echo"} {
		if c.Services[name] == nil {
			t.Errorf("%s: no example service %q", exampleFile, name)
		}
	}

	data, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	documented, mentioned := exampleKeys(string(data))
	want := configKeys(reflect.TypeFor[Config](), "")
	for _, k := range want {
		if !mentioned[k] {
			t.Errorf("%s does not show key %s", exampleFile, k)
		} else if !documented[k] {
			t.Errorf("%s shows key %s without a comment right above it", exampleFile, k)
		}
	}
	for k := range mentioned {
		if !slices.Contains(want, k) {
			t.Errorf("%s shows %s, which is no key of Config", exampleFile, k)
		}
	}
}

// configKeys lists the key paths of struct type t by its toml tags, with
// [services.NAME] as "services.*".
func configKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for _, f := range fieldsOf(t) {
		ft := t.Field(f.index).Type
		k := prefix + f.name
		switch {
		case ft.Kind() == reflect.Map:
			keys = append(keys, configKeys(ft.Elem().Elem(), k+".*.")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && ft.Elem() != reflect.TypeFor[netip.Prefix]():
			keys = append(keys, configKeys(ft.Elem(), k+".")...)
		case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[Duration]():
			keys = append(keys, configKeys(ft, k+".")...)
		default:
			keys = append(keys, k)
		}
	}
	return keys
}

var (
	headerRE = regexp.MustCompile(`^\[\[?\s*([a-z_]+)(\.[a-z0-9_."-]+)?\s*\]\]?\s*(#.*)?$`)
	keyRE    = regexp.MustCompile(`^(#\s*)?([a-z0-9_]+)\s*=`)
)

// exampleKeys finds the keys an example file sets or shows commented out,
// and those of them with a comment line right above.
func exampleKeys(src string) (documented, mentioned map[string]bool) {
	documented, mentioned = map[string]bool{}, map[string]bool{}
	table := ""
	ls := strings.Split(src, "\n")
	for i, line := range ls {
		line = strings.TrimSpace(line)
		if m := headerRE.FindStringSubmatch(line); m != nil {
			table = m[1]
			if m[2] != "" && m[1] == "services" {
				table += ".*"
			}
			continue
		}
		m := keyRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		k := table + "." + m[2]
		mentioned[k] = true
		if i > 0 {
			above := strings.TrimSpace(ls[i-1])
			if strings.HasPrefix(above, "#") && !keyRE.MatchString(above) && len(above) > 2 {
				documented[k] = true
			}
		}
	}
	return documented, mentioned
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nope.toml")
	_, err := Load(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("Load(missing) = %v, want an fs.ErrNotExist naming %s", err, path)
	}
}

func TestLoadNamesFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "gw.toml")
	if err := os.WriteFile(path, []byte("[server]\nlisten = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if want := path + ":2:10: server.listen: expected a string, found integer 1"; err == nil || err.Error() != want {
		t.Errorf("Load = %v, want %s", err, want)
	}
}

func TestRelativePaths(t *testing.T) {
	t.Parallel()
	src := lines(`[server]`, `tls_cert = "tls/cert.pem"`, `tls_key = "/abs/key.pem"`, `[auth]`, `jwt_secret_file = "jwt.secret"`)
	c, err := Parse(filepath.Join("etc", "ferry", "gateway.toml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join("etc", "ferry", "tls", "cert.pem"); c.Server.TLSCert != want {
		t.Errorf("tls_cert = %q, want %q", c.Server.TLSCert, want)
	}
	if c.Server.TLSKey != "/abs/key.pem" {
		t.Errorf("tls_key = %q, want it unchanged", c.Server.TLSKey)
	}
	if want := filepath.Join("etc", "ferry", "jwt.secret"); c.Auth.JWTSecretFile != want {
		t.Errorf("jwt_secret_file = %q, want %q", c.Auth.JWTSecretFile, want)
	}
	c, err = Parse("", []byte(src))
	if err != nil || c.Server.TLSCert != "tls/cert.pem" {
		t.Errorf("without a file name: %v, tls_cert %q; want it unchanged", err, c.Server.TLSCert)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	c := Default()
	c.File = "mem"
	c.Server.Listen = ""
	c.Server.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.1/8")}
	c.Server.AllowedHosts = []string{"gw.example.com", "gw.example.com:443"}
	c.Server.IdleTimeout = Duration{-time.Second}
	c.Compression.Threshold = -1
	c.Limits.HandshakesPerSecondPerIP = 0
	c.Services["Bad"] = &Service{Name: "bad", Backend: "x"}
	c.Services["nil"] = nil
	c.Tokens = []Token{{SHA256: hashB, Services: []string{"echo", "nope"}}}
	want := []string{
		`mem: server.listen: invalid address "": want "host:port", e.g. "127.0.0.1:8080"`,
		`mem: server.allowed_hosts[1]: invalid host "gw.example.com:443": leave out the port: a listed name passes on every port`,
		`mem: server.trusted_proxies[0]: invalid CIDR "10.0.0.1/8": host bits are set; did you mean "10.0.0.0/8"?`,
		`mem: server.idle_timeout: must not be negative, got -1s`,
		`mem: compression.threshold: must not be negative, got -1`,
		`mem: limits.handshakes_per_second_per_ip: must be a number more than 0, got 0`,
		`mem: tokens[0].services[1]: unknown service "nope": no [services.nope] table`,
		`mem: services.Bad: invalid service name "Bad": want 1 to 63 of a-z, 0-9, ".", "_", "-", starting with a letter or digit`,
		`mem: services.Bad: Name is "bad", not the service's key`,
		`mem: services.Bad.backend: invalid address "x": want "host:port" (IPv6 as "[::1]:8080")`,
		`mem: services.nil: is nil`,
	}
	err := c.Validate()
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("Validate:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

func TestLocate(t *testing.T) {
	t.Parallel()
	src := lines(
		`# comment [not.a.table]`,
		`top = 1 # x = 2`,
		`"quoted key" = 'lit'`,
		`[a . "b.c"]  # header`,
		`d.e = [ [1, 2], { f = "}" }, 1979-05-27 07:32:00Z, 3 ]`,
		`g = """`,
		`h = 1`,
		`"""`,
		`[[arr]]`,
		`[arr.sub]`,
		`x = 1`,
		`[[arr]]`,
		`  [[arr.list]]`,
		`  y = "\"]"`,
		`  [[arr.list]]`,
		`  y = 2`,
		`"esc\u0041" = 1`,
	)
	x := locate(src)
	for path, want := range map[string]position{
		"top":                 {2, 7},
		`"quoted key"`:        {3, 16},
		`a`:                   {4, 1},
		`a."b.c"`:             {4, 1},
		`a."b.c".d`:           {5, 1},
		`a."b.c".d.e`:         {5, 7},
		`a."b.c".d.e[0]`:      {5, 9},
		`a."b.c".d.e[0][1]`:   {5, 13},
		`a."b.c".d.e[1]`:      {5, 17},
		`a."b.c".d.e[1].f`:    {5, 23},
		`a."b.c".d.e[2]`:      {5, 30},
		`a."b.c".d.e[3]`:      {5, 52},
		`a."b.c".g`:           {6, 5},
		`arr`:                 {9, 1},
		`arr[0]`:              {9, 1},
		`arr[0].sub`:          {10, 1},
		`arr[0].sub.x`:        {11, 5},
		`arr[1]`:              {12, 1},
		`arr[1].list[0]`:      {13, 3},
		`arr[1].list[0].y`:    {14, 7},
		`arr[1].list[1].y`:    {16, 7},
		`arr[1].list[1].escA`: {17, 15},
	} {
		if got := x[path].val; got != want {
			t.Errorf("position of %s = %v, want %v", path, got, want)
		}
	}
	if _, ok := x[`a."b.c".h`]; ok {
		t.Error("a key inside a multi-line string was indexed")
	}
	if got, want := x.find(keyPath{"arr", "[1]", "list", "[0]", "z", "[4]"}, false), (position{13, 3}); got != want {
		t.Errorf("find of a missing key = %v, want its table's %v", got, want)
	}
	if got, want := x.find(keyPath{"top"}, true), (position{2, 1}); got != want {
		t.Errorf("find(top, atKey) = %v, want %v", got, want)
	}
	if got := x.find(keyPath{"nowhere"}, false); got != (position{}) {
		t.Errorf("find(nowhere) = %v, want none", got)
	}
}

func TestFramingDefaults(t *testing.T) {
	c, err := Parse("f.toml", []byte(lines(
		`[services.raw]`, `backend = "builtin:echo"`,
		`[services.lines]`, `backend = "builtin:echo"`, `framing = "lines"`,
		`[services.small]`, `backend = "builtin:echo"`, `framing = "u32be"`, `max_message = "1B"`,
	)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, framing string
		max           ByteSize
		framed        bool
	}{
		{"raw", "raw", 0, false},
		{"lines", "lines", DefaultMaxMessage, true},
		{"small", "u32be", 1, true},
	} {
		s := c.Services[tc.name]
		if s.Framing != tc.framing || s.MaxMessage != tc.max || s.Framed() != tc.framed {
			t.Errorf("%s: framing %q max %d framed %v, want %q %d %v", tc.name, s.Framing, s.MaxMessage, s.Framed(), tc.framing, tc.max, tc.framed)
		}
	}
}
