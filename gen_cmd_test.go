package main

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/gateway"
	"github.com/ferrygw/ferry/gateway/config"
)

func runGenCmd(args ...string) (int, string) {
	var out, errb bytes.Buffer
	code := run(append([]string{"gen"}, args...), &out, &errb)
	return code, out.String() + errb.String()
}

// TestGenCheck: -check passes on fresh output and fails, naming the file,
// after the config changes.
func TestGenCheck(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "gateway.toml")
	src, err := os.ReadFile("gen/testdata/sdk.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, src, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, lang := range []string{"ts", "go", "json"} {
		out := filepath.Join(dir, "out"+lang)
		if code, msg := runGenCmd("-config", cfgPath, "-lang", lang, "-out", out); code != 0 {
			t.Fatalf("%s: exit %d: %s", lang, code, msg)
		}
		if code, msg := runGenCmd("-config", cfgPath, "-lang", lang, "-out", out, "-check"); code != 0 || !strings.Contains(msg, "is current") {
			t.Fatalf("%s: -check on fresh output: exit %d: %s", lang, code, msg)
		}
	}
	changed := strings.Replace(string(src), `description = "Sends every byte back."`, `description = "Echoes."`, 1)
	if err := os.WriteFile(cfgPath, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	for lang, file := range map[string]string{"ts": "ferry-sdk.js", "go": "ferry_sdk.go", "json": "services.json"} {
		code, msg := runGenCmd("-config", cfgPath, "-lang", lang, "-out", filepath.Join(dir, "out"+lang), "-check")
		if code != 1 || !strings.Contains(msg, file+": differs from line") {
			t.Errorf("%s: -check after a change: exit %d: %s", lang, code, msg)
		}
	}
	code, msg := runGenCmd("-config", cfgPath, "-lang", "ts", "-out", filepath.Join(dir, "none"), "-check")
	if code != 1 || !strings.Contains(msg, "ferry-sdk.js: missing") {
		t.Errorf("-check of an empty folder: exit %d: %s", code, msg)
	}
}

func TestGenErrors(t *testing.T) {
	dir := t.TempDir()
	collide := filepath.Join(dir, "collide.toml")
	os.WriteFile(collide, []byte("[services.a-b]\nbackend = \"builtin:echo\"\n[services.\"a.b\"]\nbackend = \"builtin:echo\"\n"), 0o644)
	badFraming := filepath.Join(dir, "framing.toml")
	os.WriteFile(badFraming, []byte("[services.a]\nbackend = \"builtin:echo\"\nframing = \"json\"\n"), 0o644)
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-config", "gen/testdata/sdk.toml", "-lang", "rust", "-out", dir}, `unknown language "rust"`},
		{[]string{"-config", collide, "-lang", "ts", "-out", dir}, `services "a-b" and "a.b" both map to the TypeScript identifier aB`},
		{[]string{"-config", badFraming, "-lang", "ts", "-out", dir}, `framing.toml:3:11: services.a.framing: invalid framing "json"`},
		{[]string{"-config", "gen/testdata/sdk.toml", "-lang", "ts", "-out", filepath.Join(file, "sub")}, "-out: mkdir"},
		{[]string{"-config", "gen/testdata/sdk.toml", "-lang", "go", "-out", dir, "-package", "a-b"}, `-package "a-b" is not a Go package name`},
		{[]string{"-lang", "ts", "-out", dir}, "give one of -config FILE and -from URL"},
		{[]string{"-config", "gen/testdata/sdk.toml", "-out", dir}, "-lang is required"},
		{[]string{"-from", "ftp://x/", "-lang", "ts", "-out", dir}, "is not an http:, https:, ws: or wss: URL"},
	} {
		code, msg := runGenCmd(tc.args...)
		if code != 2 || !strings.Contains(msg, tc.want) {
			t.Errorf("%v: exit %d: %s\nwant exit 2 and %q", tc.args, code, msg, tc.want)
		}
	}
}

// TestGenFrom generates from a running gateway's catalog: the same SDK as
// from its config's public services.
func TestGenFrom(t *testing.T) {
	cfg, err := config.Load("gen/testdata/sdk.toml")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	dir := t.TempDir()
	if code, msg := runGenCmd("-from", hs.URL, "-lang", "go", "-out", filepath.Join(dir, "api")); code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	b, err := os.ReadFile(filepath.Join(dir, "api", "ferry_sdk.go"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, "package api\n") || !strings.Contains(s, "func (c *Client) Chat(") || strings.Contains(s, "RedisCache") {
		t.Errorf("the SDK from the live catalog:\n%s", s)
	}
}
