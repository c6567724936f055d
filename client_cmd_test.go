package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/gateway"
	"github.com/ferrygw/ferry/gateway/config"
)

// TestClientArgs: forward and connect check their arguments before they
// dial anything, and each problem is one line that names the argument.
func TestClientArgs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	twoLines := filepath.Join(dir, "two.token")
	if err := os.WriteFile(twoLines, []byte("abc\ndef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const u = "ws://127.0.0.1:1/tunnel"
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"forward"}, 2, "ferry forward: missing TUNNEL_URL"},
		{[]string{"forward", u}, 2, "ferry forward: missing LISTEN=SERVICE"},
		{[]string{"connect"}, 2, "ferry connect: missing TUNNEL_URL"},
		{[]string{"connect", u}, 2, "ferry connect: missing SERVICE"},
		{[]string{"connect", u, "echo", "more"}, 2, `unexpected argument "more"`},
		{[]string{"connect", u, "Echo"}, 2, `SERVICE "Echo" is not a service name`},
		{[]string{"forward", u, "6379"}, 2, `"6379": want LISTEN=SERVICE`},
		{[]string{"forward", u, "=redis"}, 2, `"=redis": want LISTEN=SERVICE`},
		{[]string{"forward", u, "70000=redis"}, 2, `port "70000" is not a port number`},
		{[]string{"forward", u, "-1=redis"}, 2, `port "-1" is not a port number`},
		{[]string{"forward", u, "x=redis"}, 2, `port "x" is not a port number`},
		{[]string{"forward", u, "[::1=redis"}, 2, `listen address "[::1" is not host:port`},
		{[]string{"forward", u, "6379=Redis"}, 2, `"Redis" is not a service name`},
		{[]string{"forward", u, "6379=a", "127.0.0.1:6379=b"}, 2, "127.0.0.1:6379 is given twice"},
		{[]string{"forward", "http://gw/tunnel", "0=a"}, 2, "want ws:// or wss://"},
		{[]string{"forward", "ws:///tunnel", "0=a"}, 2, "no host"},
		{[]string{"forward", "-pin", strings.Repeat("ab", 32), u, "0=a"}, 2, "-pin with a ws:// URL"},
		{[]string{"forward", "-ca", "ca.pem", u, "0=a"}, 2, "-ca with a ws:// URL"},
		{[]string{"forward", "-pin", "abc", "wss://127.0.0.1:1/tunnel", "0=a"}, 2, "-pin: client: a pin is the 64 hex digits"},
		{[]string{"forward", "-proxy", "socks5://p:1080", u, "0=a"}, 2, "want an http:// or https:// URL"},
		{[]string{"forward", "-timeout", "0s", u, "0=a"}, 2, "-timeout 0s: want a positive duration"},
		{[]string{"forward", "-wait", "-1s", u, "0=a"}, 2, "-wait -1s: want a positive duration"},
		{[]string{"forward", "-token-file", twoLines, u, "0=a"}, 2, "holds 2 lines"},
		{[]string{"forward", "-H", "novalue", u, "0=a"}, 2, `-H "novalue": want 'Name: value'`},
		{[]string{"forward", "-bogus", u, "0=a"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"connect", "-timeout", "x", u, "a"}, 2, `invalid value "x" for flag -timeout`},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := run(tt.args, &out, &errb)
		if code != tt.code || !strings.Contains(errb.String(), tt.stderr) {
			t.Errorf("run(%q) = %d, stderr %q; want %d and %q", tt.args, code, errb.String(), tt.code, tt.stderr)
		}
	}
}

// TestHelp: `ferry help CMD` prints what `ferry CMD -h` prints, on
// stdout, and both exit 0; usage names each flag's argument.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"forward", "connect", "token"} {
		var out1, err1, out2, err2 bytes.Buffer
		c1 := run([]string{"help", cmd}, &out1, &err1)
		c2 := run([]string{cmd, "-h"}, &out2, &err2)
		if c1 != 0 || c2 != 0 || out2.Len() == 0 || err2.Len() != 0 {
			t.Errorf("%s: exit %d and %d, stderr %q", cmd, c1, c2, err2.String())
		}
		if out1.String() != out2.String() {
			t.Errorf("ferry help %s differs from ferry %s -h:\n%s\n---\n%s", cmd, cmd, out1.String(), out2.String())
		}
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"forward", "-h"}, []string{"-timeout D", "-wait D", "-once", "-token-file FILE", "-pin FINGERPRINT", "-proxy URL", "$HTTP_PROXY for ws://", "$HTTPS_PROXY for wss://", "$NO_PROXY"}},
		{[]string{"token", "new", "-h"}, []string{"-services a,b", "-expose c,d", "-name NAME"}},
		{[]string{"token", "jwt", "-h"}, []string{"-secret-file FILE", "-key-file FILE", "-ttl D", "-sub S", "-aud A", "-iss I"}},
	} {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code != 0 {
			t.Errorf("%q: exit %d", tc.args, code)
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%q lacks %q:\n%s", tc.args, w, out.String())
			}
		}
	}
}

// TestConnectTimeout: against a listener that accepts and never answers,
// connect fails within its timeout and names the phase: at once with
// -once, after -wait without.
func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	// A listener nobody accepts on: the kernel completes the TCP handshake
	// and the connection waits in the backlog, never answered.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	u := "ws://" + ln.Addr().String() + "/tunnel"
	for _, tc := range []struct {
		name  string
		args  []string
		limit time.Duration
		want  []string
	}{
		{"once", []string{"-once", "-timeout", "300ms"}, 2 * time.Second, []string{"HTTP upgrade timed out after 300ms"}},
		{"wait", []string{"-timeout", "200ms", "-wait", "1s"}, 3 * time.Second, []string{"retrying in", "HTTP upgrade timed out after 200ms", "giving up: no tunnel to " + u + " within 1s (-wait)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errb bytes.Buffer
			start := time.Now()
			code := runContext(context.Background(), append(append([]string{"connect"}, tc.args...), u, "echo"), strings.NewReader(""), &out, &errb)
			took := time.Since(start)
			if code != 1 || took > tc.limit {
				t.Errorf("exit %d after %s, want 1 within %s", code, took, tc.limit)
			}
			for _, w := range tc.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errb.String())
				}
			}
		})
	}
}

// syncBuffer is a bytes.Buffer for output written by one goroutine and
// read by another.
type syncBuffer struct {
	b  bytes.Buffer
	lw lockedWriter
}

func newSyncBuffer() *syncBuffer {
	s := &syncBuffer{}
	s.lw.w = &s.b
	return s
}

func (s *syncBuffer) Write(p []byte) (int, error) { return s.lw.Write(p) }

func (s *syncBuffer) String() string {
	s.lw.mu.Lock()
	defer s.lw.mu.Unlock()
	return s.b.String()
}

// forwardInProcess runs `ferry forward ARGS...` (one forward to echo) in this process and
// returns the local address it forwards from and its stderr; it ends, and
// must exit 0, when the test does (after the test's own cleanups).
func forwardInProcess(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := newSyncBuffer()
	done := make(chan int, 1)
	go func() {
		done <- runContext(ctx, append([]string{"forward"}, args...), nil, pw, stderr)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("forward exited %d after its context ended; stderr:\n%s", code, stderr)
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("forward: %v; stderr:\n%s", err, stderr)
	}
	go io.Copy(io.Discard, pr)
	m := regexp.MustCompile(`^forwarding (\S+) -> echo\n$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("stdout %q", line)
	}
	return m[1], stderr
}

// TestForwardRetriesAtStart: with the gateway down, forward listens at
// once and retries; a local connection that waits longer than -wait is
// closed, with a line that says so, and one made while the gateway is
// down gets through once it is up.
func TestForwardRetriesAtStart(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	u := "ws://" + addr + "/tunnel"
	shortWait, shortErr := forwardInProcess(t, "-wait", "300ms", u, "0=echo")
	longWait, longErr := forwardInProcess(t, "-wait", "30s", u, "0=echo")

	c, err := net.Dial("tcp", shortWait)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Errorf("a connection while the gateway is down: %q, %v; want it closed", b, err)
	}
	c.Close()
	if s := shortErr.String(); !strings.Contains(s, "closed a local connection that waited 300ms for the tunnel (-wait)") || !strings.Contains(s, "retrying in") {
		t.Errorf("stderr:\n%s", s)
	}

	c, err = net.Dial("tcp", longWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() }) // before the forward ends, which waits for its connections
	serveGateway(t, addr)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := bufio.NewReader(c).ReadString('\n'); err != nil || got != "hello\n" {
		t.Fatalf("the connection made while the gateway was down: %q, %v\nstderr:\n%s", got, err, longErr)
	}
	if !strings.Contains(longErr.String(), "connected to "+u) {
		t.Errorf("no connected line:\n%s", longErr)
	}
}

func TestDedup(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	d := &dedup{w: &b, every: time.Hour}
	for i := 0; i < 5; i++ {
		d.say("limit reached")
	}
	d.say("other")
	d.every = 0
	d.say("other")
	if want := "limit reached\nother\nother\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
	b.Reset()
	d = &dedup{w: &b, every: time.Hour}
	d.say("x")
	d.say("x")
	d.every = 0
	d.say("x")
	if want := "x\nx (and 1 more like it)\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

// TestUnknownAuthority: a wss:// gateway whose certificate no trusted
// authority signed ends connect at once (it is permanent, retrying cannot
// help), said once, with what to do.
func TestUnknownAuthority(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	u := "wss://" + strings.TrimPrefix(srv.URL, "https://") + "/tunnel"
	var out, errb bytes.Buffer
	start := time.Now()
	code := runContext(context.Background(), []string{"connect", u, "echo"}, strings.NewReader(""), &out, &errb)
	if code != 1 || time.Since(start) > 5*time.Second {
		t.Errorf("exit %d after %s, want 1 at once", code, time.Since(start))
	}
	s := errb.String()
	for _, want := range []string{"x509: certificate signed by unknown authority", "give -ca FILE", "-pin with the SHA-256 fingerprint that `ferry serve -self-signed` prints"} {
		if strings.Count(s, want) != 1 {
			t.Errorf("stderr has %q %d times, want once:\n%s", want, strings.Count(s, want), s)
		}
	}
	if strings.Contains(s, "tls: tls:") || strings.Contains(s, "retrying") {
		t.Errorf("stderr:\n%s", s)
	}
}

// TestForwardConfig: ferry forward -config FILE [PROFILE] takes the
// gateway and forwards from the file, checks it with -check, reports a bad
// file with file:line:col, and forwards for real.
func TestForwardConfig(t *testing.T) {
	t.Parallel()
	gw := serveGateway(t, "127.0.0.1:0")
	dir := t.TempDir()
	file := filepath.Join(dir, "client.toml")
	good := "gateway = \"ws://127.0.0.1:1/tunnel\"\ntimeout = \"2s\"\n[forward]\n\"0\" = \"nope\"\n" +
		"[profiles.local]\ngateway = \"ws://" + gw + "/tunnel\"\n[profiles.local.forward]\n\"0\" = \"echo\"\n"
	if err := os.WriteFile(file, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("gateway = \"ws://h/tunnel\"\npin = \"ab\"\n[forward]\n\"99999\" = \"echo\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"forward", "-config", file, "-check"}, 0, "would forward 127.0.0.1:0 -> nope", ""},
		{[]string{"forward", "-config", file, "-check", "local"}, 0, "ok (gateway ws://" + gw + "/tunnel)", ""},
		{[]string{"forward", "-config", file, "-check", "other"}, 2, "", `no profile "other": it has local`},
		{[]string{"forward", "-config", file, "a", "b"}, 2, "", `the only argument is a PROFILE; unexpected "b"`},
		{[]string{"forward", "-config", bad}, 2, "", bad + ":2:7: pin: pin with a ws:// gateway"},
		{[]string{"forward", "-config", bad}, 2, "", bad + `:4:1: forward."99999": port "99999" is not a port number`},
		{[]string{"forward", "-config", filepath.Join(dir, "none.toml")}, 2, "", "none.toml: open"},
	} {
		var out, errb bytes.Buffer
		code := run(tt.args, &out, &errb)
		if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d, %q, %q", tt.args, code, out.String(), errb.String(), tt.code, tt.stdout, tt.stderr)
		}
	}
	local, stderr := forwardInProcess(t, "-config", file, "local")
	c, err := net.Dial("tcp", local)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "hello\n")
	if got, err := bufio.NewReader(c).ReadString('\n'); err != nil || got != "hello\n" {
		t.Fatalf("echo through forward -config: %q, %v\nstderr:\n%s", got, err, stderr)
	}
}

// serveGateway runs the embedded default gateway (a public echo service)
// in this process on addr until the test ends, and returns its address.
func serveGateway(t *testing.T, addr string) string {
	t.Helper()
	srv, err := gateway.New(config.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { srv.Serve(ln); close(served) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	})
	return ln.Addr().String()
}
