package gen

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/gateway/config"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// goldenDirs are where each language's golden output lives. The Go one is
// a real package of the module (tests/sdk), which the end-to-end tests
// compile and run against a live gateway.
var goldenDirs = map[string]string{
	"ts":   "testdata/ts",
	"json": "testdata/json",
	"go":   "../tests/sdk",
}

func loadFixture(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load("testdata/sdk.toml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestGolden regenerates the SDKs of testdata/sdk.toml and fails on any
// difference from the checked-in files; go test ./gen -update rewrites them.
func TestGolden(t *testing.T) {
	cat, err := FromConfig(loadFixture(t), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range Languages {
		files, err := Generate(cat, Options{Lang: lang, Package: "sdk"})
		if err != nil {
			t.Fatalf("%s: %v", lang, err)
		}
		dir := goldenDirs[lang]
		for _, f := range files {
			if !bytes.Contains(f.Data[:min(len(f.Data), 200)], []byte(Header)) {
				t.Errorf("%s does not start with %q", f.Name, Header)
			}
			if *update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, s := range Stale(dir, files) {
			t.Errorf("%s/%s; run go test ./gen -update and review the diff", dir, s)
		}
	}
}

// TestDeterministic generates twice, from maps filled in different
// orders, and wants the same bytes.
func TestDeterministic(t *testing.T) {
	for _, lang := range Languages {
		var prev []byte
		for range 5 {
			cat, err := FromConfig(loadFixture(t), false)
			if err != nil {
				t.Fatal(err)
			}
			files, err := Generate(cat, Options{Lang: lang, Package: "sdk"})
			if err != nil {
				t.Fatal(err)
			}
			var all []byte
			for _, f := range files {
				all = append(append(all, f.Name...), f.Data...)
			}
			if prev != nil && !bytes.Equal(prev, all) {
				t.Fatalf("%s: two runs differ", lang)
			}
			prev = all
		}
		if bytes.Contains(prev, []byte("testdata")) || bytes.Contains(prev, []byte("/work/")) {
			t.Errorf("%s: the output names a path", lang)
		}
	}
}

func TestIdents(t *testing.T) {
	for _, tc := range []struct{ name, ts, goID string }{
		{"redis", "redis", "Redis"},
		{"redis-cache", "redisCache", "RedisCache"},
		{"frames_u32", "framesU32", "FramesU32"},
		{"a.b-c_d", "aBCD", "ABCD"},
		{"2fa", "service2fa", "Service2fa"},
		{"9-lives", "service9Lives", "Service9Lives"},
		{"x2", "x2", "X2"},
		{"then", "thenService", "Then"},
		{"close", "closeService", "CloseService"},
		{"url", "urlService", "Url"},
		{"dial", "dialService", "DialService"},
		{"constructor", "constructorService", "Constructor"},
		{"to-string", "toStringService", "ToString"},
		{"session", "session", "SessionService"},
		{"connect", "connect", "ConnectService"},
		{"a--b", "aB", "AB"},
	} {
		if got := TSIdent(tc.name); got != tc.ts {
			t.Errorf("TSIdent(%q) = %q, want %q", tc.name, got, tc.ts)
		}
		if got := GoIdent(tc.name); got != tc.goID {
			t.Errorf("GoIdent(%q) = %q, want %q", tc.name, got, tc.goID)
		}
	}
}

func TestCollisions(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"a-b", "a.b"}, `services "a-b" and "a.b" both map to the TypeScript identifier aB`},
		{[]string{"2fa", "service2fa"}, `services "2fa" and "service2fa" both map to the TypeScript identifier service2fa`},
		{[]string{"close", "close-service"}, `services "close" and "close-service" both map to the TypeScript identifier closeService`},
		{[]string{"session", "session-service"}, `services "session" and "session-service" both map to the Go identifier SessionService`},
	} {
		var src strings.Builder
		for _, n := range tc.names {
			src.WriteString("[services.\"" + n + "\"]\nbackend = \"builtin:echo\"\n")
		}
		cfg, err := config.Parse("c.toml", []byte(src.String()))
		if err != nil {
			t.Fatal(err)
		}
		_, err = FromConfig(cfg, false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.names, err, tc.want)
		}
	}
}

func TestPublicOnly(t *testing.T) {
	cat, err := FromConfig(loadFixture(t), true)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range cat.Services {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, ","); got != "chat,echo" {
		t.Errorf("public services %s, want chat,echo", got)
	}
}

// TestCatalogRoundTrip parses the JSON catalog and generates the same SDKs
// from it as from the config, as ferry gen -from does.
func TestCatalogRoundTrip(t *testing.T) {
	cat, err := FromConfig(loadFixture(t), false)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseCatalog(cat.JSON())
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range Languages {
		a, _ := Generate(cat, Options{Lang: lang, Package: "sdk"})
		b, err := Generate(back, Options{Lang: lang, Package: "sdk"})
		if err != nil {
			t.Fatal(err)
		}
		for i := range a {
			if !bytes.Equal(a[i].Data, b[i].Data) {
				t.Errorf("%s: %s from the catalog differs from the config's", lang, a[i].Name)
			}
		}
	}
}

func TestParseCatalogErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`[]`, "not a Ferry service catalog"},
		{`{"format":"other","version":1}`, `format is "other"`},
		{`{"format":"ferry.services","version":2,"tunnel_path":"/t"}`, "catalog version 2"},
		{`{"format":"ferry.services","version":1,"tunnel_path":"t"}`, "not an absolute path"},
		{`{"format":"ferry.services","version":1,"tunnel_path":"/t","services":[{"name":"Bad","framing":"raw"}]}`, `invalid service name "Bad"`},
		{`{"format":"ferry.services","version":1,"tunnel_path":"/t","services":[{"name":"a","framing":"json"}]}`, `service "a": invalid framing "json"`},
		{`{"format":"ferry.services","version":1,"tunnel_path":"/t","services":[{"name":"a","framing":"lines","max_message":0}]}`, `service "a": max_message 0`},
		{`{"format":"ferry.services","version":1,"tunnel_path":"/t","services":[{"name":"a","framing":"raw"},{"name":"a","framing":"raw"}]}`, `"a" is listed twice`},
	} {
		if _, err := ParseCatalog([]byte(tc.src)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.src, err, tc.want)
		}
	}
}

func TestGenerateErrors(t *testing.T) {
	cat, err := FromConfig(loadFixture(t), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Lang: "rust"}, `unknown language "rust": want ts, go, json`},
		{Options{Lang: "go", Package: "my-sdk"}, `-package "my-sdk" is not a Go package name`},
		{Options{Lang: "go", Package: "type"}, `-package "type" is not a Go package name`},
	} {
		if _, err := Generate(cat, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
	for dir, want := range map[string]string{"/x/My-SDK": "mysdk", "out/api2/": "api2", "sdk": "sdk"} {
		if got := PackageFor(dir); got != want {
			t.Errorf("PackageFor(%q) = %q, want %q", dir, got, want)
		}
	}
}
