package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{args: []string{"version"}, code: 0, stdout: "ferry devel (commit unknown, go"},
		{args: []string{"help"}, code: 0, stdout: "Commands:"},
		{args: nil, code: 2, stderr: "Usage:"},
		{args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{args: []string{"version", "-x"}, code: 2, stderr: "flag provided but not defined"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := run(tt.args, &out, &errb)
		if code != tt.code {
			t.Errorf("run(%q) = %d, want %d (stderr %q)", tt.args, code, tt.code, errb.String())
		}
		if !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
			t.Errorf("run(%q): stdout %q, stderr %q; want them to contain %q and %q", tt.args, out.String(), errb.String(), tt.stdout, tt.stderr)
		}
	}
}

func TestVersionFromLdflags(t *testing.T) {
	version, commit = "v1.2.3", "abc123"
	defer func() { version, commit = "", "" }()
	if got := versionLine(); !strings.HasPrefix(got, "ferry v1.2.3 (commit abc123, go") {
		t.Errorf("versionLine() = %q", got)
	}
}

func TestTokenNew(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if code := run([]string{"token", "new", "-name", "alice", "-services", "redis,pg"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(out.String(), "\n")
	tok := lines[0]
	if len(tok) != 43 || strings.Trim(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		t.Fatalf("token %q is not 43 base64url characters", tok)
	}
	sum := sha256.Sum256([]byte(tok))
	for _, want := range []string{"[[tokens]]", `name = "alice"`, fmt.Sprintf("sha256 = %q", hex.EncodeToString(sum[:])), `services = ["redis", "pg"]`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if code := run([]string{"token", "new", "-services", "Bad Name"}, &out, &errb); code != 2 {
		t.Errorf("bad service name: exit %d", code)
	}
}

func TestServeCheck(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if code := run([]string{"serve", "-config", "gateway.toml", "-check"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "gateway.toml: ok") {
		t.Fatalf("exit %d: %s %s", code, out.String(), errb.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("[server]\nlisten = \"nope\"\n[limits]\nmax_sesions = 3\n"), 0o644)
	out.Reset()
	errb.Reset()
	if code := run([]string{"serve", "-config", bad, "-check"}, &out, &errb); code != 1 {
		t.Fatalf("bad config: exit %d", code)
	}
	for _, want := range []string{bad + ":2:", "server.listen", bad + ":4:", "limits.max_sesions"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("errors lack %q:\n%s", want, errb.String())
		}
	}
}

// TestServeCheckReadsFiles: -check refuses what serve would refuse at
// start, the files a config names included. Before, it said ok.
func TestServeCheckReadsFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	short := filepath.Join(dir, "short.secret")
	if err := os.WriteFile(short, []byte("12345"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, toml, want string
	}{
		{"missing TLS files", "[server]\ntls_cert = \"" + filepath.Join(dir, "none.pem") + "\"\ntls_key = \"" + filepath.Join(dir, "none.key") + "\"\n", "none.pem"},
		{"missing jwt_secret_file", "[auth]\njwt_secret_file = \"" + filepath.Join(dir, "none.secret") + "\"\n", "none.secret"},
		{"short jwt_secret_file", "[auth]\njwt_secret_file = \"" + short + "\"\n", "short.secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(t.TempDir(), "gw.toml")
			if err := os.WriteFile(file, []byte(tt.toml), 0o644); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			if code := run([]string{"serve", "-config", file, "-check"}, &out, &errb); code != 1 {
				t.Fatalf("exit %d, want 1: %s", code, out.String())
			}
			if !strings.Contains(errb.String(), file) || !strings.Contains(errb.String(), tt.want) {
				t.Errorf("error %q does not name the config and %s", errb.String(), tt.want)
			}
		})
	}
}
