package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrygw/ferry/compress"
	"github.com/ferrygw/ferry/tunnel"
)

// interopDir holds the peer scripts and node_modules, relative to this
// package's directory, where go test runs.
const interopDir = "interop"

// interopReadLimit is the message limit of our side in the interop tests,
// well above the largest message (16 MiB).
const interopReadLimit = 32 << 20

// peer is one third-party WebSocket implementation driven by a script in
// tests/interop.
type peer struct {
	name string
	// argv is the command line that runs the script with args.
	argv func(args ...string) []string
	// available reports why the peer cannot run here, or nil.
	available func() error
	// install says how to make the peer available.
	install string
	// sendsInvalidUTF8 is true when the client mode has --send-invalid-utf8.
	sendsInvalidUTF8 bool
}

// systemPython is the interpreter that has Debian's python3-websockets; the
// python3 on PATH may be another one without it.
const systemPython = "/usr/bin/python3"

var pythonPeer = &peer{
	name: "python-websockets",
	argv: func(args ...string) []string {
		return append([]string{systemPython, "peer.py"}, args...)
	},
	available: sync.OnceValue(func() error {
		if _, err := os.Stat(systemPython); err != nil {
			return err
		}
		out, err := exec.Command(systemPython, "-c", "import websockets; print(websockets.__version__)").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s cannot import websockets: %v: %s", systemPython, err, bytes.TrimSpace(out))
		}
		return nil
	}),
	install: "install it with `apt-get install python3-websockets`",
}

var nodePeer = &peer{
	name: "node-ws",
	argv: func(args ...string) []string {
		return append([]string{"node", "peer.js"}, args...)
	},
	available: sync.OnceValue(func() error {
		if _, err := exec.LookPath("node"); err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(interopDir, "node_modules", "ws", "package.json")); err != nil {
			return fmt.Errorf("ws is not installed: %w", err)
		}
		return nil
	}),
	install:          "install node, then run `npm ci` in tests/interop",
	sendsInvalidUTF8: true,
}

var peers = []*peer{pythonPeer, nodePeer}

// require skips the test when the peer cannot run here, or fails it under
// CI=true, where every peer must be present.
func (p *peer) require(t *testing.T) {
	t.Helper()
	err := p.available()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s peer is missing under CI=true: %v; %s", p.name, err, p.install)
	}
	t.Skipf("%s peer is not available: %v; %s (under CI=true this fails)", p.name, err, p.install)
}

// syncBuffer is a bytes.Buffer that a process can write while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lineLog is a Writer that passes on the first line written to it and
// keeps the lines after it for waitLine.
type lineLog struct {
	mu      sync.Mutex
	buf     []byte
	first   chan string // receives the first line
	sent    bool
	lines   []string      // the lines after the first
	changed chan struct{} // closed and replaced when a line is added
}

func newLineLog() *lineLog {
	return &lineLog{first: make(chan string, 1), changed: make(chan struct{})}
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(l.buf[:i])
		l.buf = l.buf[i+1:]
		if !l.sent {
			l.sent = true
			l.first <- line
			continue
		}
		l.lines = append(l.lines, line)
		close(l.changed)
		l.changed = make(chan struct{})
	}
}

// waitLine returns the first line after the first that starts with prefix,
// waiting up to 30 seconds for it.
func (l *lineLog) waitLine(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		l.mu.Lock()
		for _, line := range l.lines {
			if strings.HasPrefix(line, prefix) {
				l.mu.Unlock()
				return line
			}
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("no line starting with %q within 30s", prefix)
		}
	}
}

// peerServer is a running peer echo server.
type peerServer struct {
	url    string // ws://127.0.0.1:PORT
	stderr *syncBuffer
	stdout *lineLog // the lines after the port
}

// startPeerServer runs the peer's echo server with args after `server`. The
// server is killed when the test ends.
func startPeerServer(t *testing.T, p *peer, args ...string) *peerServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	argv := p.argv(append([]string{"server"}, args...)...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = interopDir
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	stdout := newLineLog()
	cmd.Stdout = stdout
	// The server also stops when its stdin closes, so it cannot outlive
	// this process even if the kill is missed.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s server: %v", p.name, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cancel() // kills the process
		stdin.Close()
		<-exited
	})
	select {
	case line := <-stdout.first:
		if _, err := strconv.ParseUint(strings.TrimSpace(line), 10, 16); err != nil {
			t.Fatalf("%s server printed %q, not a port", p.name, line)
		}
		return &peerServer{url: "ws://127.0.0.1:" + strings.TrimSpace(line), stderr: stderr, stdout: stdout}
	case <-exited:
		t.Fatalf("%s server exited before printing its port: %v\n%s", p.name, waitErr, stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s server printed no port within 30s\n%s", p.name, stderr)
	}
	return nil
}

// peerResult is how a peer client run ended.
type peerResult struct {
	stdout, stderr string
	err            error
}

// closeLine returns the `close CODE REASON` line the client prints last.
func (r peerResult) closeLine() string {
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	return lines[len(lines)-1]
}

// runPeerClient runs the peer's client mode against url with args.
func runPeerClient(t *testing.T, p *peer, url string, args ...string) peerResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	argv := p.argv(append([]string{"client", url}, args...)...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = interopDir
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	return peerResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// echoServer is our WebSocket echo server on 127.0.0.1, built on
// tunnel.Accept. Query parameters change what it does with a connection:
// close=CODE&reason=R closes at once with CODE and R; limit=N sets the read
// limit to N bytes; fragment=alternate echoes every second message as
// fragments from a Writer (see send).
type echoServer struct {
	url string
	// ended receives, for each connection, the error that ended it: the
	// result of Close for close=, else the error Read returned.
	ended chan error
	// accepted receives each connection as it is accepted.
	accepted chan acceptedConn
	// compression is AcceptOptions.Compression.
	compression *compress.Options
}

// acceptedConn is what the echo server knows of one of its connections.
type acceptedConn struct {
	params  compress.Params // from Compression
	deflate bool            // permessage-deflate was negotiated
	wire    *countingConn   // the TCP connection, counting bytes
}

func startEchoServer(t *testing.T) *echoServer {
	t.Helper()
	return startCompressingEchoServer(t, nil)
}

// startCompressingEchoServer starts an echo server that accepts
// permessage-deflate with opts (nil: never).
func startCompressingEchoServer(t *testing.T, opts *compress.Options) *echoServer {
	t.Helper()
	s := &echoServer{ended: make(chan error, 16), accepted: make(chan acceptedConn, 16), compression: opts}
	srv := newCountingServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/"
	return s
}

func (s *echoServer) serve(w http.ResponseWriter, r *http.Request) {
	c, err := tunnel.Accept(w, r, &tunnel.AcceptOptions{ReadLimit: interopReadLimit, Compression: s.compression})
	if err != nil {
		s.report(err)
		return
	}
	defer c.CloseNow()
	params, deflate := c.Compression()
	select {
	case s.accepted <- acceptedConn{params: params, deflate: deflate, wire: wireOf(r)}:
	default:
	}
	q := r.URL.Query()
	if v := q.Get("close"); v != "" {
		code, err := strconv.Atoi(v)
		if err != nil {
			s.report(err)
			return
		}
		s.report(c.Close(tunnel.StatusCode(code), q.Get("reason")))
		return
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			s.report(err)
			return
		}
		c.SetReadLimit(n)
	}
	// The peer process ends the connection; the timeout only guards
	// against a peer that hangs.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alternate := q.Get("fragment") == "alternate"
	var buf []byte
	for n := 0; ; n++ {
		typ, msg, err := c.ReadAppend(ctx, buf[:0])
		if err != nil {
			s.report(err)
			return
		}
		buf = msg
		if err := send(ctx, c, typ, msg, alternate && n%2 == 1); err != nil {
			s.report(err)
			return
		}
	}
}

func (s *echoServer) report(err error) {
	select {
	case s.ended <- err:
	default:
	}
}

// wait returns how the next connection ended.
func (s *echoServer) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.ended:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the echo server's connection did not end within 30s")
		return nil
	}
}

// checkCloseError reports how err differs from want (nil when it matches):
// err must be a *tunnel.CloseError with want's Code and Local, and with
// want's Reason unless that is empty.
func checkCloseError(err error, want *tunnel.CloseError) error {
	var ce *tunnel.CloseError
	if !errors.As(err, &ce) {
		return fmt.Errorf("got %v, want %v", err, want)
	}
	if ce.Code != want.Code || (want.Reason != "" && ce.Reason != want.Reason) || ce.Local != want.Local {
		return fmt.Errorf("got %#v, want %#v", *ce, *want)
	}
	return nil
}
