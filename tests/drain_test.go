package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/tunnel"
	"github.com/hashicorp/yamux"
)

// drainGateway is a `ferry serve` process with an admin listener.
type drainGateway struct {
	name, tunnelURL, admin string
	proc                   *proc
}

// startDrainGateway runs `ferry serve` with a public echo service and a
// public "who" service whose backend answers name.
func startDrainGateway(t *testing.T, name string) *drainGateway {
	t.Helper()
	who := tcpServer(t, func(c net.Conn) { io.WriteString(c, name) })
	cfg := fmt.Sprintf(`[server]
drain_timeout = "20s"
[admin]
listen = "127.0.0.1:0"
[log]
format = "json"
[limits]
max_sessions_per_ip = 1000
handshakes_per_second_per_ip = 1000
[services.echo]
backend = "builtin:echo"
public = true
[services.who]
backend = %q
public = true
`, who)
	file := filepath.Join(t.TempDir(), "gateway.toml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &drainGateway{name: name}
	g.proc = startProc(t, "ferry serve "+name, []string{ferryPath(t), "serve", "-config", file, "-listen", "127.0.0.1:0"}, procOptions{stop: syscall.SIGTERM})
	g.admin = g.proc.stdout.wait(t, "ferry serve "+name, adminLine, 1, 30*time.Second)[0][1]
	g.tunnelURL = g.proc.stdout.wait(t, "ferry serve "+name, servingLine, 1, 30*time.Second)[0][1]
	return g
}

func (g *drainGateway) ready() bool {
	resp, err := http.Get(g.admin + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// balancer is a TCP load balancer on 127.0.0.1: each new connection goes
// to the first gateway whose /readyz answers 200, as a health-checking
// load balancer sends it.
func balancer(t *testing.T, gws ...*drainGateway) string {
	t.Helper()
	return tcpServer(t, func(c net.Conn) {
		for _, g := range gws {
			if !g.ready() {
				continue
			}
			addr := strings.TrimPrefix(strings.TrimSuffix(g.tunnelURL, "/tunnel"), "ws://")
			up, err := net.Dial("tcp", addr)
			if err != nil {
				continue
			}
			defer up.Close()
			done := make(chan struct{})
			go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); close(done) }()
			io.Copy(c, up)
			c.(*net.TCPConn).CloseWrite()
			<-done
			return
		}
	})
}

func who(t *testing.T, s *client.Session) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := s.Dial(ctx, "who")
	if err != nil {
		t.Fatalf("Dial during the drain: %v", err)
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("who: %v", err)
	}
	return string(b)
}

// TestDrainTwoGateways: two gateways behind a load balancer. The first
// gets SIGTERM while a client has a stream mid-transfer through it: the
// client's next Dials succeed on the second gateway at once (no failed
// Dial), the old stream finishes whole on the first, a session there
// without streams gets 1001 within a second, and the first exits 0 once
// its last stream ends.
func TestDrainTwoGateways(t *testing.T) {
	a, b := startDrainGateway(t, "A"), startDrainGateway(t, "B")
	lb := balancer(t, a, b)
	url := "ws://" + lb + "/tunnel"
	s, err := client.Connect(context.Background(), url, &client.Options{MinBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := who(t, s); got != "A" {
		t.Fatalf("before the drain: %q", got)
	}
	// A stream mid-transfer through A.
	bulk, err := s.Dial(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer bulk.Close()
	sum := sha256.New()
	var echoed sync.WaitGroup
	echoed.Add(1)
	var gotSum []byte
	var readErr error
	go func() {
		defer echoed.Done()
		h := sha256.New()
		_, readErr = io.Copy(h, bulk)
		gotSum = h.Sum(nil)
	}()
	chunk := bytes.Repeat([]byte("drain-me"), 8<<10) // 64 KiB
	write := func(n int) {
		for range n {
			sum.Write(chunk)
			if _, err := bulk.Write(chunk); err != nil {
				t.Fatalf("the stream through A: %v", err)
			}
		}
	}
	write(32)
	// An idle session on A, outside the client package, to time its 1001.
	idle, _, err := tunnel.Dial(context.Background(), a.tunnelURL, &tunnel.DialOptions{Subprotocols: []string{tunnel.Subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	idleMux, err := yamux.Client(idle.StreamConn(), tunnel.MuxConfig(tunnel.DefaultWindow))
	if err != nil {
		t.Fatal(err)
	}
	defer idleMux.Close()

	start := time.Now()
	if err := a.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-idleMux.CloseChan():
	case <-time.After(5 * time.Second):
		t.Fatal("the idle session on A was not closed within 5s of SIGTERM")
	}
	idleAfter := time.Since(start)
	var ce *tunnel.CloseError
	if !errors.As(idle.Err(), &ce) || ce.Code != tunnel.StatusGoingAway {
		t.Errorf("the idle session ended with %v, want 1001", idle.Err())
	}
	if idleAfter > time.Second {
		t.Errorf("the idle session got its close %s after SIGTERM, want within a second", idleAfter)
	}
	// New streams reach B, every one of them, while A drains.
	for i := range 5 {
		if got := who(t, s); got != "B" {
			t.Fatalf("Dial %d during the drain reached %q, want B", i, got)
		}
	}
	write(32) // the old stream still runs on A
	if err := bulk.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	echoed.Wait()
	if readErr != nil || !bytes.Equal(gotSum, sum.Sum(nil)) {
		t.Fatalf("the stream across the drain: %v, hash %x want %x", readErr, gotSum, sum.Sum(nil))
	}
	bulk.Close()
	select {
	case <-a.proc.exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("A did not exit within 15s after its last stream ended:\n%s", a.proc.stderr)
	}
	if a.proc.waitErr != nil {
		t.Fatalf("A exited with %v:\n%s", a.proc.waitErr, a.proc.stderr)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("A took %s to drain with nothing left open (drain_timeout 20s)", took)
	}
	if got := who(t, s); got != "B" {
		t.Fatalf("after A left: %q", got)
	}
	for _, want := range []string{`"msg":"draining"`, `"msg":"stopped"`} {
		if !strings.Contains(a.proc.stderr.String(), want) {
			t.Errorf("A's log lacks %s:\n%s", want, a.proc.stderr)
		}
	}
}
