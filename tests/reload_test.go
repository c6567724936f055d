package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
)

// TestServeReload: `ferry serve -watch` reloads when its file changes and
// on SIGHUP: a retargeted service reaches its new backend, a broken file
// is rejected with its errors while the old config serves on, an
// unchanged file is a no-op, and every log line is JSON with a timestamp
// and no token in it.
func TestServeReload(t *testing.T) {
	a := tcpServer(t, func(c net.Conn) { io.WriteString(c, "A") })
	b := tcpServer(t, func(c net.Conn) { io.WriteString(c, "B") })
	token, hash := newToken(t)
	conf := func(backend string) string {
		return fmt.Sprintf(`[log]
format = "json"
[limits]
max_sessions_per_ip = 1000
[[tokens]]
name = "reload-test"
sha256 = %q
services = ["who"]
[services.who]
backend = %q
`, hash, backend)
	}
	file := filepath.Join(t.TempDir(), "gateway.toml")
	write := func(text string) {
		t.Helper()
		// Written aside and renamed, as editors and config managers do,
		// so the watcher never reads half a file.
		tmp := file + ".new"
		if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write(conf(a))
	p := startProc(t, "ferry serve", []string{ferryPath(t), "serve", "-config", file, "-listen", "127.0.0.1:0", "-watch"}, procOptions{stop: syscall.SIGTERM})
	url := p.stdout.wait(t, "ferry serve", servingLine, 1, 30*time.Second)[0][1]
	s, err := client.Connect(context.Background(), url, &client.Options{Token: token, MinBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	whoIs := func() string {
		t.Helper()
		c, err := s.Dial(context.Background(), "who")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		return string(got)
	}
	if got := whoIs(); got != "A" {
		t.Fatalf("before: %q", got)
	}
	applied := regexp.MustCompile(`"msg":"reload applied"`)

	write(conf(b)) // -watch sees it within its second
	p.stderr.wait(t, "ferry serve", applied, 1, 20*time.Second)
	if got := whoIs(); got != "B" {
		t.Fatalf("after the file changed: %q", got)
	}

	write(conf(a) + "\n[services.who]\nbackend = \"nope\"\n")
	m := p.stderr.wait(t, "ferry serve", regexp.MustCompile(`"msg":"reload rejected: the running config stays".*"errors":"(.*)"`), 1, 20*time.Second)
	if !strings.Contains(m[0][1], "gateway.toml:") {
		t.Errorf("the rejected line does not say where: %s", m[0][0])
	}
	if got := whoIs(); got != "B" {
		t.Fatalf("after a broken file: %q, want the running config's B", got)
	}

	// SIGHUP applies what the file says now; the watcher may apply it
	// first, so wait for the change either way, then SIGHUP once more
	// with nothing changed.
	write(conf(a))
	p.stderr.wait(t, "ferry serve", applied, 2, 20*time.Second)
	if got := whoIs(); got != "A" {
		t.Fatalf("after the fix: %q", got)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.stderr.wait(t, "ferry serve", regexp.MustCompile(`"msg":"reload applied: no changes","trigger":"SIGHUP"`), 1, 20*time.Second)
	if got := whoIs(); got != "A" {
		t.Fatalf("after a no-op SIGHUP: %q", got)
	}

	s.Close()
	p.stderr.wait(t, "ferry serve", regexp.MustCompile(`"msg":"session ended"`), 1, 20*time.Second)
	for _, line := range strings.Split(strings.TrimSpace(p.stderr.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("a log line is not JSON: %q", line)
			continue
		}
		if _, ok := m["time"]; !ok {
			t.Errorf("a log line has no time: %q", line)
		}
		if strings.Contains(line, token) {
			t.Errorf("a log line holds the token: %q", line)
		}
	}
}
