package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeCheckWarnings: -check names the TLS key at fault, and warns
// (exit 0) about a config with no services and about a backend whose
// name resolves into [network] deny.
func TestServeCheckWarnings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name, toml string
		code       int
		want       string // in stderr
	}{
		{"missing TLS cert names its key", "[server]\ntls_cert = \"" + filepath.Join(dir, "none.pem") + "\"\ntls_key = \"" + filepath.Join(dir, "none.key") + "\"\n[services.e]\nbackend = \"builtin:echo\"\n", 1, "server.tls_cert:"},
		{"no services", "", 0, "warning: no [services]"},
		{"a name that resolves into deny", "[network]\ndeny = [\"127.0.0.0/8\", \"::1/128\"]\n[services.local]\nbackend = \"localhost:6379\"\n", 0,
			"warning: services.local.backend: localhost resolves only to addresses in network.deny"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(t.TempDir(), "gw.toml")
			if err := os.WriteFile(file, []byte(tt.toml), 0o644); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			if code := run([]string{"serve", "-config", file, "-check"}, &out, &errb); code != tt.code {
				t.Fatalf("exit %d, want %d: %s %s", code, tt.code, out.String(), errb.String())
			}
			if !strings.Contains(errb.String(), tt.want) || !strings.Contains(errb.String(), file) {
				t.Errorf("stderr %q lacks the config's name and %q", errb.String(), tt.want)
			}
		})
	}
}

// TestServeFlags: bad -log-format and -watch without -config are usage
// errors.
func TestServeFlags(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "-log-format", "xml"}, `-log-format "xml"`},
		{[]string{"serve", "-watch"}, "-watch needs -config FILE"},
	} {
		var out, errb bytes.Buffer
		if code := run(tt.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tt.args, code, errb.String(), tt.want)
		}
	}
	for _, cmd := range []string{"serve", "gen", "expose"} {
		var out, errb bytes.Buffer
		if code := run([]string{cmd, "-h"}, &out, &errb); code != 0 || !strings.Contains(out.String()+errb.String(), "Usage: ferry "+cmd) {
			t.Errorf("ferry %s -h: exit %d, want 0 and the usage", cmd, code)
		}
	}
}
