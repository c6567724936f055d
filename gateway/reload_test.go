package gateway_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/gateway"
	"github.com/ferrygw/ferry/gateway/config"
	"github.com/ferrygw/ferry/tunnel"
	"github.com/golang-jwt/jwt/v5"
)

// logBuffer collects a gateway's JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns every line logged so far, decoded.
func (b *logBuffer) lines(t testing.TB) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// find returns the lines whose msg is msg.
func (b *logBuffer) find(t testing.TB, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range b.lines(t) {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// text is everything logged, for greps.
func (b *logBuffer) text() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fileGateway is a gateway run from a config file, as `ferry serve
// -config` runs it, with its log lines in JSON.
type fileGateway struct {
	*gw
	path string
	logs *logBuffer
}

func startFileGateway(t *testing.T, toml string) *fileGateway {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gateway.toml")
	if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	srv, err := gateway.New(cfg, &gateway.Options{Log: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return &fileGateway{gw: &gw{srv: srv, url: "ws://" + ln.Addr().String() + cfg.Server.TunnelPath, ln: ln, done: done}, path: path, logs: logs}
}

// rewrite replaces the config file and reloads it, as SIGHUP does.
func (g *fileGateway) rewrite(t *testing.T, toml string) (gateway.ReloadResult, error) {
	t.Helper()
	if err := os.WriteFile(g.path, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	return g.srv.ReloadFile(g.path, "", "test")
}

// greeter is a backend that writes its name and closes.
func greeter(t *testing.T, name string) string {
	return tcpBackend(t, func(c *net.TCPConn) { io.WriteString(c, name) })
}

func readAll(t *testing.T, s *client.Session, service string) string {
	t.Helper()
	c, err := s.Dial(context.Background(), service)
	if err != nil {
		t.Fatalf("dial %s: %v", service, err)
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read %s: %v", service, err)
	}
	return string(b)
}

// TestReloadRetarget: a reload that moves a service to another backend
// while a stream to a second service is mid-transfer: new streams reach
// the new backend, and the transfer arrives whole.
func TestReloadRetarget(t *testing.T) {
	t.Parallel()
	hash := hashBackend(t)
	a, b := greeter(t, "A"), greeter(t, "B")
	conf := func(target string) string {
		return baseConfig(fmt.Sprintf("[services.bulk]\nbackend = %q\npublic = true\n[services.greet]\nbackend = %q\npublic = true\n", hash, target))
	}
	g := startFileGateway(t, conf(a))
	s := connect(t, g.url, nil)
	if got := readAll(t, s, "greet"); got != "A" {
		t.Fatalf("before the reload: %q", got)
	}
	c, err := s.Dial(context.Background(), "bulk")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := sha256.New()
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 1<<12) // 64 KiB
	send := func(n int) {
		for range n {
			want.Write(chunk)
			if _, err := c.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(64) // 4 MiB before the reload
	res, err := g.rewrite(t, conf(b))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || len(res.Summary) != 1 || !strings.Contains(res.Summary[0], "greet retargeted") {
		t.Fatalf("reload: %+v", res)
	}
	if got := readAll(t, s, "greet"); got != "B" {
		t.Fatalf("after the reload: %q, want the new backend", got)
	}
	send(64) // 4 MiB after
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, want.Sum(nil)) {
		t.Fatalf("the transfer across the reload: %x, %v; want %x", got, err, want.Sum(nil))
	}
	lines := g.logs.find(t, "reload applied")
	if len(lines) != 1 || !strings.Contains(lines[0]["changes"].(string), "greet retargeted from "+a+" to "+b) {
		t.Fatalf("reload lines: %v", lines)
	}
}

// TestReloadBrokenFile: a file with errors is rejected with all of them
// in the log, and the old config goes on serving.
func TestReloadBrokenFile(t *testing.T) {
	t.Parallel()
	g := startFileGateway(t, baseConfig(""))
	s := connect(t, g.url, nil)
	broken := baseConfig("[server]\nkeepalive = \"soon\"\nlisten_on = 1\n")
	if _, err := g.rewrite(t, broken); err == nil {
		t.Fatal("a broken file was applied")
	}
	lines := g.logs.find(t, "reload rejected: the running config stays")
	if len(lines) != 1 {
		t.Fatalf("rejected lines: %v", lines)
	}
	errs := lines[0]["errors"].(string)
	for _, want := range []string{"gateway.toml:", "server.keepalive", "listen_on"} {
		if !strings.Contains(errs, want) {
			t.Errorf("the rejected line lacks %q: %s", want, errs)
		}
	}
	c, err := s.Dial(context.Background(), "echo")
	if err != nil {
		t.Fatalf("after a rejected reload: %v", err)
	}
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo after a rejected reload: %q, %v", buf, err)
	}
	c.Close()
}

// TestReloadRemovesService: the streams of a removed service end (the
// client reads end of file after what it was sent), the reason is in the
// stream's log line, and new opens are refused as unknown.
func TestReloadRemovesService(t *testing.T) {
	t.Parallel()
	sent := make(chan struct{})
	backend := tcpBackend(t, func(c *net.TCPConn) {
		io.WriteString(c, "hello")
		close(sent)
		io.Copy(io.Discard, c) // until the gateway aborts it
	})
	conf := baseConfig(fmt.Sprintf("[services.doomed]\nbackend = %q\npublic = true\n", backend))
	g := startFileGateway(t, conf)
	s := connect(t, g.url, nil)
	c, err := s.Dial(context.Background(), "doomed")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-sent
	hello := make([]byte, 5)
	if _, err := io.ReadFull(c, hello); err != nil || string(hello) != "hello" {
		t.Fatalf("before the reload: %q, %v", hello, err)
	}
	res, err := g.rewrite(t, baseConfig(""))
	if err != nil {
		t.Fatal(err)
	}
	if res.Ended != 1 {
		t.Fatalf("reload ended %d streams, want 1: %+v", res.Ended, res)
	}
	got, err := io.ReadAll(c)
	if err != nil || len(got) != 0 {
		t.Fatalf("the removed service's stream: %q, %v; want end of file", got, err)
	}
	var oe *tunnel.OpenError
	if _, err := s.Dial(context.Background(), "doomed"); !errors.As(err, &oe) || oe.Status != tunnel.OpenUnknownService {
		t.Fatalf("open after removal: %v", err)
	}
	var ended map[string]any
	waitUntil(t, 5*time.Second, "the stream's log line", func() bool {
		for _, l := range g.logs.find(t, "stream ended") {
			if l["service"] == "doomed" {
				ended = l
				return true
			}
		}
		return false
	})
	if ended["end"] != "service_removed" || ended["reason"] != "service doomed removed by a reload" || ended["bytes_out"] != float64(5) {
		t.Fatalf("stream line: %v", ended)
	}
}

// TestReloadRevokesToken: removing a token closes its sessions at the
// reload with 4401 "credential revoked"; a session whose token stays is
// untouched, and a token given another service may open it at once.
func TestReloadRevokesToken(t *testing.T) {
	t.Parallel()
	backend := echoBackend(t)
	tokens := func(keepServices string, withBob bool) string {
		s := fmt.Sprintf("[[tokens]]\nname = \"alice\"\nsha256 = %q\nservices = [%s]\n", tokenHash("alice-token"), keepServices)
		if withBob {
			s += fmt.Sprintf("[[tokens]]\nname = \"bob\"\nsha256 = %q\nservices = [\"db\"]\n", tokenHash("bob-token"))
		}
		return baseConfig(s + fmt.Sprintf("[services.db]\nbackend = %q\n[services.cache]\nbackend = %q\n", backend, backend))
	}
	g := startFileGateway(t, tokens(`"db"`, true))
	bobStatus := make(chan client.Status, 16)
	bob := connect(t, g.url, &client.Options{Token: "bob-token", MinBackoff: time.Hour, OnStatus: func(st client.Status) { bobStatus <- st }})
	alice := connect(t, g.url, &client.Options{Token: "alice-token", MinBackoff: time.Hour})
	bc, err := bob.Dial(context.Background(), "db") // a long stream
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	var oe *tunnel.OpenError
	if _, err := alice.Dial(context.Background(), "cache"); !errors.As(err, &oe) || oe.Status != tunnel.OpenForbidden {
		t.Fatalf("alice opens cache before: %v", err)
	}
	res, err := g.rewrite(t, tokens(`"db", "cache"`, false))
	if err != nil {
		t.Fatal(err)
	}
	if res.Revoked != 1 {
		t.Fatalf("revoked %d sessions, want 1: %+v", res.Revoked, res)
	}
	if _, err := io.ReadAll(bc); !errors.Is(err, client.ErrTunnelLost) {
		t.Fatalf("bob's stream ended with %v", err)
	}
	for st := range bobStatus {
		if st.State != client.Reconnecting {
			continue
		}
		var te *client.TunnelClosedError
		if !errors.As(st.Err, &te) || te.Code != 4401 || te.Reason != "credential revoked" || !te.Remote {
			t.Fatalf("bob's tunnel ended with %v, want 4401 credential revoked", st.Err)
		}
		break
	}
	c, err := alice.Dial(context.Background(), "cache")
	if err != nil {
		t.Fatalf("alice opens cache after the reload: %v", err)
	}
	c.Close()
	if !strings.Contains(g.logs.text(), `"sessions_revoked":1`) {
		t.Errorf("the reload line does not count the revoked session:\n%s", g.logs.text())
	}
}

// TestReloadUnchanged: reloading the same file does nothing, and says so.
func TestReloadUnchanged(t *testing.T) {
	t.Parallel()
	conf := baseConfig("")
	g := startFileGateway(t, conf)
	s := connect(t, g.url, nil)
	c, err := s.Dial(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := g.rewrite(t, conf)
	if err != nil || res.Changed || len(res.Restart) != 0 || res.Revoked != 0 || res.Ended != 0 {
		t.Fatalf("unchanged reload: %+v, %v", res, err)
	}
	if n := len(g.logs.find(t, "reload applied: no changes")); n != 1 {
		t.Fatalf("%d no-change lines", n)
	}
	c.Write([]byte("still"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "still" {
		t.Fatalf("the stream across a no-op reload: %q, %v", buf, err)
	}
}

// TestReloadRestartKeys: keys that need a restart keep their running
// value and are named in the reload's line; new-session keys are named
// as such.
func TestReloadRestartKeys(t *testing.T) {
	t.Parallel()
	g := startFileGateway(t, baseConfig(""))
	res, err := g.rewrite(t, baseConfig("[server]\nlisten = \"127.0.0.1:1\"\nkeepalive = \"7s\"\n[admin]\nlisten = \"127.0.0.1:2\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Restart, ",") != "server.listen,admin.listen" || strings.Join(res.NewSessionsOnly, ",") != "server.keepalive" {
		t.Fatalf("restart %v, new sessions only %v", res.Restart, res.NewSessionsOnly)
	}
	l := g.logs.find(t, "reload applied")
	if len(l) != 1 || l[0]["restart_needed"] != "server.listen, admin.listen" || l[0]["new_sessions_only"] != "server.keepalive" {
		t.Fatalf("reload line: %v", l)
	}
}

// TestAccessLog: a scripted run logs one JSON line per stream, per
// session, per refusal and per failed backend dial, with their fields,
// and no line holds a token, a JWT or the JWT secret.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	backend := echoBackend(t)
	closedPort := func() string { // a port nothing listens on
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}()
	conf := jwtConfig(t, backend) + fmt.Sprintf(`
[[tokens]]
name = "ci"
sha256 = %q
services = ["redis", "gone"]
[services.gone]
backend = %q
`, tokenHash("static-secret-token"), closedPort)
	g := startFileGateway(t, conf)
	jwtTok := signHS(t, hsSecret, jwt.MapClaims{"sub": "page-7", "aud": "ferry-test", "services": []string{"redis"}, "exp": time.Now().Add(time.Hour).Unix()})

	for _, tok := range []string{"static-secret-token", jwtTok} {
		s, err := client.Connect(context.Background(), g.url, &client.Options{Token: tok, MinBackoff: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.Dial(context.Background(), "redis")
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("12345"))
		c.CloseWrite()
		if b, err := io.ReadAll(c); err != nil || string(b) != "12345" {
			t.Fatalf("echo: %q %v", b, err)
		}
		c.Close()
		if tok == "static-secret-token" {
			var oe *tunnel.OpenError
			if _, err := s.Dial(context.Background(), "gone"); !errors.As(err, &oe) || oe.Status != tunnel.OpenRefused {
				t.Fatalf("dial to a closed port: %v", err)
			}
		}
		s.Close()
	}
	if _, err := client.Connect(context.Background(), g.url, &client.Options{Token: "wrong-secret-token", MinBackoff: time.Hour}); err == nil {
		t.Fatal("a wrong token was let in")
	}
	waitUntil(t, 5*time.Second, "two session lines", func() bool { return len(g.logs.find(t, "session ended")) == 2 })

	creds := map[string]bool{}
	for _, l := range g.logs.find(t, "session ended") {
		for _, k := range []string{"time", "peer", "credential", "origin", "duration", "streams", "wire_in", "wire_out", "close_code", "close_reason", "closed_by"} {
			if _, ok := l[k]; !ok {
				t.Errorf("session line lacks %s: %v", k, l)
			}
		}
		if l["peer"] != "127.0.0.1" || l["close_code"] != float64(1000) || l["closed_by"] != "client" || l["wire_in"].(float64) <= 0 {
			t.Errorf("session line: %v", l)
		}
		creds[l["credential"].(string)] = true
	}
	if !creds["ci"] || !creds["jwt:page-7"] {
		t.Errorf("session credentials %v, want ci and jwt:page-7", creds)
	}
	streams := 0
	for _, l := range g.logs.find(t, "stream ended") {
		streams++
		if l["service"] != "redis" || l["backend"] != backend || l["bytes_in"] != float64(5) || l["bytes_out"] != float64(5) || l["end"] != "closed" || l["duration"] == nil {
			t.Errorf("stream line: %v", l)
		}
	}
	if streams != 2 {
		t.Errorf("%d stream lines, want 2", streams)
	}
	if l := g.logs.find(t, "backend dial failed"); len(l) != 1 || l[0]["service"] != "gone" || l[0]["level"] != "WARN" {
		t.Errorf("dial failure lines: %v", l)
	}
	if l := g.logs.find(t, "stream refused"); len(l) != 1 || l[0]["result"] != "refused" || l[0]["service"] != "gone" {
		t.Errorf("stream refusal lines: %v", l)
	}
	if l := g.logs.find(t, "handshake refused"); len(l) != 1 || l[0]["reason"] != "auth" || l[0]["peer"] != "127.0.0.1" {
		t.Errorf("handshake refusal lines: %v", l)
	}
	all := g.logs.text()
	for _, secret := range []string{"static-secret-token", "wrong-secret-token", jwtTok, strings.Split(jwtTok, ".")[2], hsSecret} {
		if strings.Contains(all, secret) {
			t.Errorf("the log holds a secret %q", secret)
		}
	}
}

// TestReloadLiveSDK: the live SDK follows a reload: a public service
// added to the file is in /ferry/services.json and /ferry/sdk.js at once.
func TestReloadLiveSDK(t *testing.T) {
	t.Parallel()
	g := startFileGateway(t, baseConfig(""))
	page := "http://" + g.ln.Addr().String()
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(page + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, err)
		}
		return string(b)
	}
	if strings.Contains(get("/ferry/services.json"), "chat-room") {
		t.Fatal("the service is there before the reload")
	}
	if _, err := g.rewrite(t, baseConfig("[services.chat-room]\nbackend = \"builtin:echo\"\npublic = true\nframing = \"lines\"\n")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(get("/ferry/services.json"), `"chat-room"`) || !strings.Contains(get("/ferry/sdk.js"), "chatRoom") {
		t.Fatal("the live SDK does not have the service added by the reload")
	}
}
