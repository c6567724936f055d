package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/claims"
	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: the in-process
// forwards and connects, their Sessions and status lines included.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

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
	if code := run([]string{"token", "new", "-name", "alice", "-services", "redis,pg", "-expose", "web"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	tok, rest, _ := strings.Cut(out.String(), "\n")
	if rest != "" {
		t.Errorf("stdout holds more than the token: %q", out.String())
	}
	if len(tok) != 43 || strings.Trim(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		t.Fatalf("token %q is not 43 base64url characters", tok)
	}
	sum := sha256.Sum256([]byte(tok))
	for _, want := range []string{"[[tokens]]", `name = "alice"`, fmt.Sprintf("sha256 = %q", hex.EncodeToString(sum[:])), `services = ["redis", "pg"]`, `expose = ["web"]`} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
	if strings.Contains(errb.String(), "warning") {
		t.Errorf("a warning for a token with services: %s", errb.String())
	}
}

// TestTokenNewToFile: `ferry token new > f` then `-token-file f` yields
// the token: the file holds the token and a newline.
func TestTokenNewToFile(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if code := run([]string{"token", "new", "-services", "redis"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	file := filepath.Join(t.TempDir(), "alice.token")
	if err := os.WriteFile(file, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cf := &clientFlags{tokenFile: file, timeout: time.Second, wait: time.Second}
	opts, err := cf.options("ws://127.0.0.1:1/tunnel")
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSuffix(out.String(), "\n"); opts.Token != want {
		t.Errorf("-token-file read %q, want %q", opts.Token, want)
	}
}

func TestTokenFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name, content string
		want          string // the token, or a part of the error
		ok            bool
	}{
		{"bare", "abc_DEF-123", "abc_DEF-123", true},
		{"newline", "abc\n", "abc", true},
		{"crlf", "abc\r\n", "abc", true},
		{"jwt", "a.b.c\n", "a.b.c", true},
		{"empty", "", "is empty", false},
		{"only newline", "\n", "is empty", false},
		{"old token new output", "abc\n\n# Paste into gateway.toml\n[[tokens]]\nsha256 = \"00\"\n", "holds 5 lines", false},
		{"space", "abc def", "character 4 is a space", false},
		{"quoted", "\"abc\"", "character 1 is '\"'", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(dir, tt.name)
			if err := os.WriteFile(file, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := readTokenFile(file)
			switch {
			case tt.ok && (err != nil || got != tt.want):
				t.Errorf("readTokenFile = %q, %v; want %q", got, err, tt.want)
			case !tt.ok && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("readTokenFile = %q, %v; want an error with %q", got, err, tt.want)
			case !tt.ok && strings.Contains(tt.content, "abc") && strings.Contains(err.Error(), "abc"):
				t.Errorf("the error shows the file's content: %v", err)
			}
		})
	}
	if _, err := readTokenFile(filepath.Join(dir, "none")); err == nil || !strings.Contains(err.Error(), "-token-file") {
		t.Errorf("a missing file: %v", err)
	}
}

// TestTokenJWT mints with each kind of key and verifies with the claims
// package, as the gateway does.
func TestTokenJWT(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "jwt.secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("s3cret", 8)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "ed25519.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	secretKey, err := claims.LoadSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	pubKey, err := claims.PublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		key  *claims.Key
	}{
		{"HS256", []string{"-secret-file", secret}, secretKey},
		{"EdDSA", []string{"-key-file", keyFile}, pubKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errb bytes.Buffer
			args := append([]string{"token", "jwt"}, tc.args...)
			args = append(args, "-services", "redis,pg", "-expose", "web", "-ttl", "10m", "-sub", "alice", "-aud", "ferry", "-iss", "me")
			if code := run(args, &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			tok := strings.TrimSuffix(out.String(), "\n")
			c, err := claims.NewVerifier(tc.key, claims.VerifyOptions{Audience: "ferry", Issuer: "me"}).Verify(tok)
			if err != nil {
				t.Fatalf("verify %q: %v", tok, err)
			}
			if c.Subject != "alice" || strings.Join(c.Services, ",") != "redis,pg" || strings.Join(c.Expose, ",") != "web" {
				t.Errorf("claims %+v", c)
			}
			if d := time.Until(c.Expires); d < 9*time.Minute || d > 11*time.Minute {
				t.Errorf("expires in %s, want 10m", d)
			}
			if !strings.Contains(errb.String(), tc.name+" token, expires ") {
				t.Errorf("stderr %q", errb.String())
			}
		})
	}
}

// TestTokenErrors: every refusal of the token commands names its cause.
func TestTokenErrors(t *testing.T) {
	t.Parallel()
	secret := filepath.Join(t.TempDir(), "jwt.secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("x", 40)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"token"}, 2, "missing subcommand"},
		{[]string{"token", "foo"}, 2, `unknown subcommand "foo"`},
		{[]string{"token", "new", "-services", "Bad Name"}, 2, `"Bad Name" is not a service name`},
		{[]string{"token", "new", "-expose", "a,B"}, 2, `-expose: "B" is not a service name`},
		{[]string{"token", "new"}, 0, "warning: -services and -expose are both empty"},
		{[]string{"token", "new", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"token", "new", "-x"}, 2, "flag provided but not defined: -x"},
		{[]string{"token", "jwt", "-services", "a", "-ttl", "1m"}, 2, "missing -secret-file FILE or -key-file FILE"},
		{[]string{"token", "jwt", "-secret-file", secret, "-key-file", secret, "-services", "a", "-ttl", "1m"}, 2, "give one"},
		{[]string{"token", "jwt", "-secret-file", secret, "-services", "a"}, 2, "missing -ttl D"},
		{[]string{"token", "jwt", "-secret-file", secret, "-services", "a", "-ttl", "-1m"}, 2, "want a positive duration"},
		{[]string{"token", "jwt", "-secret-file", secret, "-ttl", "1m"}, 2, "needs -services or -expose"},
		{[]string{"token", "jwt", "-secret-file", secret + ".none", "-services", "a", "-ttl", "1m"}, 1, "no such file"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := run(tt.args, &out, &errb)
		if code != tt.code || !strings.Contains(errb.String(), tt.stderr) {
			t.Errorf("run(%q) = %d, stderr %q; want %d and %q", tt.args, code, errb.String(), tt.code, tt.stderr)
		}
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
