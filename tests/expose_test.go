package tests

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
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
)

var exposingLine = regexp.MustCompile(`^exposing (\S+) -> (\S+) \(exposer (\S+)\)$`)

// TestE2EExpose: a real redis-server that the gateway's config does not
// name (it stands in for a host behind NAT) is exposed by `ferry expose`
// and reached by `ferry forward` from a second client: redis-benchmark
// runs through it without errors and a 32 MiB value round-trips. A
// restarted exposer takes its name back at once.
func TestE2EExpose(t *testing.T) {
	redisAddr := startRedis(t)
	exposeTok, exposeHash := newToken(t)
	userTok, userHash := newToken(t)
	cfg := fmt.Sprintf(`[limits]
max_sessions_per_ip = 1000
max_sessions_per_token = 1000
handshakes_per_second_per_ip = 1000
[[tokens]]
name = "laptop"
sha256 = %q
expose = ["laptop-redis"]
[[tokens]]
name = "teammate"
sha256 = %q
services = ["laptop-redis"]
[services.laptop-redis]
backend = "expose"
`, exposeHash, userHash)
	file := filepath.Join(t.TempDir(), "gateway.toml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := startProc(t, "ferry serve", []string{ferryPath(t), "serve", "-config", file, "-listen", "127.0.0.1:0"}, procOptions{stop: syscall.SIGTERM})
	url := gw.stdout.wait(t, "ferry serve", servingLine, 1, 30*time.Second)[0][1]
	_, redisPort, _ := net.SplitHostPort(redisAddr)
	startExposer := func() *proc {
		p := startProc(t, "ferry expose", []string{ferryPath(t), "expose", "-token", exposeTok, "-id", "laptop-1", url, "laptop-redis=" + redisPort}, procOptions{stop: syscall.SIGTERM})
		m := p.stdout.wait(t, "ferry expose", exposingLine, 1, 30*time.Second)[0]
		if m[1] != "laptop-redis" || m[2] != redisAddr || m[3] != "laptop-1" {
			t.Fatalf("ferry expose printed %q", m[0])
		}
		return p
	}
	exposer := startExposer()
	g := &e2eGateway{tunnelURL: url}
	addrs, _ := startForward(t, g, userTok, "laptop-redis")
	host, port, _ := net.SplitHostPort(addrs["laptop-redis"])

	out := runCmd(t, nil, "redis-benchmark", "-h", host, "-p", port, "-q", "-n", "10000", "-c", "10", "-t", "ping,set,get")
	for _, name := range []string{"PING_INLINE", "PING_MBULK", "SET", "GET"} {
		if !regexp.MustCompile(name + `: [0-9.]+ requests per second`).MatchString(out) {
			t.Errorf("redis-benchmark through the exposed service reported no %s; its output:\n%s", name, out)
		}
	}
	if strings.Contains(strings.ToLower(out), "error") {
		t.Errorf("redis-benchmark reported errors:\n%s", out)
	}

	bigValue := func() {
		t.Helper()
		c, err := net.Dial("tcp", addrs["laptop-redis"])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		r := bufio.NewReader(c)
		value := make([]byte, 32<<20)
		rand.Read(value)
		key := "ferry-exposed"
		set := fmt.Appendf(nil, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n", len(key), key, len(value))
		go func() {
			c.Write(set)
			c.Write(value)
			c.Write([]byte("\r\n"))
			fmt.Fprintf(c, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(key), key)
		}()
		if line, err := r.ReadString('\n'); err != nil || line != "+OK\r\n" {
			t.Fatalf("SET: %q, %v", line, err)
		}
		if line, err := r.ReadString('\n'); err != nil || line != fmt.Sprintf("$%d\r\n", len(value)) {
			t.Fatalf("GET: %q, %v", line, err)
		}
		got := make([]byte, len(value))
		if _, err := io.ReadFull(r, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, value) {
			t.Fatalf("the 32 MiB value came back different: sha256 %x, want %x", sha256.Sum256(got), sha256.Sum256(value))
		}
	}
	bigValue()

	// The exposer restarts: a kill leaves the gateway with a registration
	// it does not know is dead yet; the new process's registration with
	// the same ID takes the name back at once.
	exposer.cmd.Process.Signal(syscall.SIGKILL)
	<-exposer.exited
	startExposer()
	out = runCmd(t, nil, "redis-cli", "-h", host, "-p", port, "PING")
	if strings.TrimSpace(out) != "PONG" {
		t.Fatalf("PING after the exposer restarted: %q", out)
	}
}

// TestExposeTwoGateways: an exposer registered on two gateways (-also)
// is reached through either, with nothing shared between them but the
// config.
func TestExposeTwoGateways(t *testing.T) {
	local := tcpServer(t, func(c net.Conn) { io.WriteString(c, "from the laptop") })
	exposeTok, exposeHash := newToken(t)
	userTok, userHash := newToken(t)
	cfg := fmt.Sprintf(`[limits]
max_sessions_per_ip = 1000
[[tokens]]
sha256 = %q
expose = ["laptop"]
[[tokens]]
sha256 = %q
services = ["laptop"]
[services.laptop]
backend = "expose"
`, exposeHash, userHash)
	file := filepath.Join(t.TempDir(), "gateway.toml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, name := range []string{"A", "B"} {
		p := startProc(t, "ferry serve "+name, []string{ferryPath(t), "serve", "-config", file, "-listen", "127.0.0.1:0"}, procOptions{stop: syscall.SIGTERM})
		urls = append(urls, p.stdout.wait(t, "ferry serve "+name, servingLine, 1, 30*time.Second)[0][1])
	}
	_, port, _ := net.SplitHostPort(local)
	p := startProc(t, "ferry expose", []string{ferryPath(t), "expose", "-token", exposeTok, "-also", urls[1], urls[0], "laptop=" + port}, procOptions{stop: syscall.SIGTERM})
	p.stdout.wait(t, "ferry expose", regexp.MustCompile(`^exposing laptop -> \S+ \(exposer \S+\) on `), 2, 30*time.Second)
	for _, u := range urls {
		out := runCmd(t, nil, ferryPath(t), "connect", "-token", userTok, u, "laptop")
		if out != "from the laptop" {
			t.Errorf("through %s: %q", u, out)
		}
	}
}
