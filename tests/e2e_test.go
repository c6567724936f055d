//go:build linux

package tests

// End-to-end tests of the ferry binary with real servers: the tests build
// `ferry`, start `ferry serve` with a config of their own, real redis-server
// and PostgreSQL 15 backends, and `ferry forward`, then drive the backends
// through the forwarded ports with their own tools (redis-benchmark,
// pgbench, psql) and through client.Session.Dial. Every process they start
// is stopped, by PID or process group, when the test ends.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
)

// e2eBuildDir holds the ferry binary that ferryBinary builds; TestMain
// removes it.
var e2eBuildDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if e2eBuildDir != "" {
		os.RemoveAll(e2eBuildDir)
	}
	os.Exit(code)
}

// ferryBinary builds the ferry command once per test process and returns
// its path.
var ferryBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "ferry-e2e-bin-")
	if err != nil {
		return "", err
	}
	e2eBuildDir = dir
	bin := filepath.Join(dir, "ferry")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/ferrygw/ferry").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func ferryPath(t *testing.T) string {
	t.Helper()
	bin, err := ferryBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// pgBin holds Debian's PostgreSQL 15 server and client programs; the ones in
// /usr/bin are wrappers that pick a version.
const pgBin = "/usr/lib/postgresql/15/bin"

// redisPeer and postgresPeer are the backend servers; only their
// availability checks and install hints are used (peer.require).
var redisPeer = &peer{
	name: "redis-server",
	available: sync.OnceValue(func() error {
		for _, prog := range []string{"redis-server", "redis-benchmark"} {
			if _, err := exec.LookPath(prog); err != nil {
				return err
			}
		}
		return nil
	}),
	install: "install it with `apt-get install redis-server redis-tools`",
}

var postgresPeer = &peer{
	name: "postgresql-15",
	available: sync.OnceValue(func() error {
		for _, prog := range []string{"initdb", "postgres", "pgbench", "psql"} {
			if err := executable(filepath.Join(pgBin, prog)); err != nil {
				return err
			}
		}
		if os.Getuid() == 0 {
			// initdb and postgres refuse to run as root.
			if _, err := user.Lookup("postgres"); err != nil {
				return err
			}
			if _, err := exec.LookPath("runuser"); err != nil {
				return err
			}
		}
		return nil
	}),
	install: "install it with `apt-get install postgresql-15 postgresql-client-15`",
}

func executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", path)
	}
	return nil
}

// lines collects a process's output, line by line, for wait.
type lines struct {
	mu      sync.Mutex
	buf     []byte
	all     []string
	eof     bool          // the process has exited
	changed chan struct{} // closed and replaced on a new line or eof
}

func newLines() *lines { return &lines{changed: make(chan struct{})} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	added := false
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.all = append(l.all, string(l.buf[:i]))
		l.buf = l.buf[i+1:]
		added = true
	}
	if added {
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(p), nil
}

// close marks the end of the output, once the process has exited.
func (l *lines) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.all = append(l.all, string(l.buf))
		l.buf = nil
	}
	l.eof = true
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n") + string(l.buf)
}

// wait returns the first n lines that match re, waiting up to timeout for
// them; it fails the test when the output ends or the time is up first.
func (l *lines) wait(t *testing.T, what string, re *regexp.Regexp, n int, timeout time.Duration) [][]string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		var got [][]string
		for _, line := range l.all {
			if m := re.FindStringSubmatch(line); m != nil {
				got = append(got, m)
				if len(got) == n {
					l.mu.Unlock()
					return got
				}
			}
		}
		eof, changed := l.eof, l.changed
		l.mu.Unlock()
		if eof {
			t.Fatalf("%s: the process exited without %d lines matching %q; its output:\n%s", what, n, re, l)
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%s: no %d lines matching %q within %s; output so far:\n%s", what, n, re, timeout, l)
		}
	}
}

// proc is a process a test started; it is stopped when the test ends.
type proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr *lines
	exited         chan struct{}
	waitErr        error // set before exited is closed
}

// procOptions say how a process is started and stopped.
type procOptions struct {
	// stop is the signal that asks the process to end (default SIGKILL).
	stop syscall.Signal
	// group starts the process in a process group of its own and sends
	// stop to the whole group: for runuser, whose child is the server.
	group bool
	// parentDeath is the signal the process gets should the test process
	// die before stopping it (default SIGKILL).
	parentDeath syscall.Signal
	// stopped, when set, runs after the process has exited on cleanup,
	// with how it ended.
	stopped func(err error)
}

// startProc starts argv. On cleanup it sends opts.stop (to the process, or
// its group), waits up to 15 s, then sends SIGKILL (to the same) and waits.
func startProc(t *testing.T, name string, argv []string, opts procOptions) *proc {
	t.Helper()
	if opts.stop == 0 {
		opts.stop = syscall.SIGKILL
	}
	if opts.parentDeath == 0 {
		opts.parentDeath = syscall.SIGKILL
	}
	p := &proc{name: name, stdout: newLines(), stderr: newLines(), exited: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout = p.stdout
	p.cmd.Stderr = p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: opts.group, Pdeathsig: opts.parentDeath}
	// Children that inherited the output pipes must not hold up Wait.
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	pid := p.cmd.Process.Pid
	signal := func(sig syscall.Signal) {
		if opts.group {
			_ = syscall.Kill(-pid, sig) // Setpgid: the group is named after the leader
		} else {
			_ = syscall.Kill(pid, sig)
		}
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		p.stdout.close()
		p.stderr.close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			signal(opts.stop)
			select {
			case <-p.exited:
			case <-time.After(15 * time.Second):
				t.Errorf("%s (pid %d) did not end within 15s of %v; killing it", name, pid, opts.stop)
				signal(syscall.SIGKILL)
				<-p.exited
			}
		}
		if opts.stopped != nil {
			opts.stopped(p.waitErr)
		}
	})
	return p
}

// runCmd runs argv to completion (at most 2 minutes) and returns its
// combined output, failing the test when it fails.
func runCmd(t *testing.T, env []string, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v (after %s)\n%s", strings.Join(argv, " "), err, time.Since(start).Round(time.Millisecond), out)
	}
	t.Logf("%s: ok in %s", strings.Join(argv, " "), time.Since(start).Round(time.Millisecond))
	return string(out)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// servers that cannot listen on port 0 and report the port.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// newToken returns a random token and its config hash.
func newToken(t *testing.T) (token, hash string) {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, fmt.Sprintf("%x", sha256.Sum256([]byte(token)))
}

// e2eGateway is a running `ferry serve`.
type e2eGateway struct {
	tunnelURL string
	// allToken may open redis and postgres; redisToken only redis.
	allToken, redisToken string
	proc                 *proc
}

var servingLine = regexp.MustCompile(`^ferry: serving http://\S+/ \(tunnel (ws://[^,\s]+), `)

// startGateway writes a config with private services redis and postgres at
// the given backends, and two tokens, and runs `ferry serve` on a free
// port. The gateway is stopped with SIGTERM when the test ends, and must
// then exit with status 0.
func startGateway(t *testing.T, redisAddr, postgresAddr string) *e2eGateway {
	t.Helper()
	g := &e2eGateway{}
	var allHash, redisHash string
	g.allToken, allHash = newToken(t)
	g.redisToken, redisHash = newToken(t)
	cfg := fmt.Sprintf(`# written by tests/e2e_test.go
[server]
drain_timeout = "2s"

[limits]
max_sessions_per_ip = 1000
max_sessions_per_token = 1000
handshakes_per_second_per_ip = 1000

[[tokens]]
name = "e2e-all"
sha256 = %q
services = ["redis", "postgres"]

[[tokens]]
name = "e2e-redis-only"
sha256 = %q
services = ["redis"]

[services.redis]
backend = %q
public = false

[services.postgres]
backend = %q
public = false
`, allHash, redisHash, redisAddr, postgresAddr)
	file := filepath.Join(t.TempDir(), "gateway.toml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var p *proc
	p = startProc(t, "ferry serve", []string{ferryPath(t), "serve", "-config", file, "-listen", "127.0.0.1:0"}, procOptions{
		stop: syscall.SIGTERM,
		stopped: func(err error) {
			if err != nil {
				t.Errorf("ferry serve ended with %v after SIGTERM, want status 0; its log:\n%s", err, p.stderr)
			}
		},
	})
	g.proc = p
	g.tunnelURL = p.stdout.wait(t, "ferry serve", servingLine, 1, 30*time.Second)[0][1]
	return g
}

var forwardingLine = regexp.MustCompile(`^forwarding (127\.0\.0\.1:\d+) -> (\S+)$`)

// startForward runs `ferry forward -token TOKEN URL 0=SERVICE...` and
// returns the local address of each service once they are all printed.
func startForward(t *testing.T, g *e2eGateway, token string, services ...string) (map[string]string, *proc) {
	t.Helper()
	argv := []string{ferryPath(t), "forward", "-token", token, g.tunnelURL}
	for _, s := range services {
		argv = append(argv, "0="+s)
	}
	p := startProc(t, "ferry forward", argv, procOptions{stop: syscall.SIGTERM})
	addrs := map[string]string{}
	for _, m := range p.stdout.wait(t, "ferry forward", forwardingLine, len(services), 30*time.Second) {
		addrs[m[2]] = m[1]
	}
	for _, s := range services {
		if addrs[s] == "" {
			t.Fatalf("ferry forward printed no forwarding line for %s:\n%s", s, p.stdout)
		}
	}
	return addrs, p
}

// startRedis runs redis-server on a free port of 127.0.0.1, without
// persistence, and returns its address once it is ready.
func startRedis(t *testing.T) string {
	t.Helper()
	redisPeer.require(t)
	port := freePort(t)
	p := startProc(t, "redis-server", []string{"redis-server",
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir(),
		"--daemonize", "no",
	}, procOptions{stop: syscall.SIGTERM})
	p.stdout.wait(t, "redis-server", regexp.MustCompile(`Ready to accept connections`), 1, 30*time.Second)
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// TestE2ERedis runs redis-benchmark through `ferry forward`, and a Go
// round trip with a 1 MiB value through client.Session.Dial.
func TestE2ERedis(t *testing.T) {
	t.Parallel()
	redisAddr := startRedis(t)
	g := startGateway(t, redisAddr, "127.0.0.1:1")
	addrs, _ := startForward(t, g, g.allToken, "redis")
	host, port, _ := net.SplitHostPort(addrs["redis"])

	t.Run("redis-benchmark", func(t *testing.T) {
		out := runCmd(t, nil, "redis-benchmark", "-h", host, "-p", port, "-q", "-n", "20000", "-c", "20", "-t", "ping,set,get")
		// -q rewrites a progress line with \r and ends each test with
		// "NAME: N requests per second, ...".
		results := map[string]float64{}
		for _, line := range strings.FieldsFunc(out, func(r rune) bool { return r == '\r' || r == '\n' }) {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ": ")
			if !ok || !strings.Contains(rest, "requests per second") {
				continue
			}
			rps, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			if err != nil {
				t.Errorf("cannot read %q: %v", line, err)
				continue
			}
			results[name] = rps
		}
		for _, name := range []string{"PING_INLINE", "PING_MBULK", "SET", "GET"} {
			if results[name] <= 0 {
				t.Errorf("redis-benchmark reported no result for %s; its output:\n%s", name, out)
			}
		}
		t.Logf("requests per second through ferry forward: %v", results)
	})

	t.Run("client.Dial", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		sess, err := client.Connect(ctx, g.tunnelURL, &client.Options{Token: g.allToken})
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		c, err := sess.Dial(ctx, "redis")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		r := bufio.NewReader(c)

		if _, err := io.WriteString(c, "*1\r\n$4\r\nPING\r\n"); err != nil {
			t.Fatal(err)
		}
		if line, err := r.ReadString('\n'); err != nil || line != "+PONG\r\n" {
			t.Fatalf("PING: got %q, %v; want +PONG", line, err)
		}

		value := make([]byte, 1<<20)
		if _, err := rand.Read(value); err != nil {
			t.Fatal(err)
		}
		key := "ferry-e2e"
		set := fmt.Appendf(nil, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n", len(key), key, len(value))
		set = append(append(set, value...), "\r\n"...)
		if _, err := c.Write(set); err != nil {
			t.Fatal(err)
		}
		if line, err := r.ReadString('\n'); err != nil || line != "+OK\r\n" {
			t.Fatalf("SET: got %q, %v; want +OK", line, err)
		}

		if _, err := fmt.Fprintf(c, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(key), key); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("$%d\r\n", len(value))
		if line, err := r.ReadString('\n'); err != nil || line != want {
			t.Fatalf("GET: got header %q, %v; want %q", line, err, want)
		}
		got := make([]byte, len(value)+2)
		if _, err := io.ReadFull(r, got); err != nil {
			t.Fatalf("GET: reading the value: %v", err)
		}
		if !bytes.Equal(got[:len(value)], value) || string(got[len(value):]) != "\r\n" {
			t.Fatalf("GET: the 1 MiB value came back different (sha256 %x, want %x)",
				sha256.Sum256(got[:len(value)]), sha256.Sum256(value))
		}

		// A half-close crosses the tunnel: redis sees end of input and
		// closes, and that close comes back as end of stream.
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
			t.Fatalf("after CloseWrite: read %q, %v; want end of stream", rest, err)
		}
	})
}

// startPostgres initializes a cluster in a fresh folder and runs postgres
// on a free port of 127.0.0.1, as the postgres user when the test runs as
// root (initdb and postgres refuse root; runuser starts them). When the
// test ends, postgres gets SIGINT (fast shutdown) through runuser's process
// group, and the test checks that the server removed its postmaster.pid,
// which it does once it and all its children have ended.
func startPostgres(t *testing.T) string {
	t.Helper()
	postgresPeer.require(t)
	dir, err := os.MkdirTemp("", "ferry-e2e-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) }) // runs after postgres has stopped
	var asPostgres []string
	if os.Getuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		asPostgres = []string{"runuser", "-u", "postgres", "--"}
	}
	data := filepath.Join(dir, "data")
	runCmd(t, nil, append(asPostgres, filepath.Join(pgBin, "initdb"),
		"-D", data, "--auth=trust", "-U", "postgres", "--no-sync", "--locale=C", "-E", "UTF8")...)

	port := freePort(t)
	var p *proc
	p = startProc(t, "postgres", append(asPostgres, filepath.Join(pgBin, "postgres"),
		"-D", data, "-k", dir, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		// A throwaway cluster: durability only costs time.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
	), procOptions{
		stop:  syscall.SIGINT,
		group: true,
		// runuser passes SIGTERM on to postgres; the server's children
		// end when it does.
		parentDeath: syscall.SIGTERM,
		stopped: func(error) {
			pidFile := filepath.Join(data, "postmaster.pid")
			b, err := os.ReadFile(pidFile)
			if errors.Is(err, os.ErrNotExist) {
				return
			}
			t.Errorf("postgres left %s after its shutdown (%v); sending SIGQUIT; its log:\n%s", pidFile, err, p.stderr)
			if pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0]); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGQUIT) // immediate shutdown, children too
			}
		},
	})
	p.stderr.wait(t, "postgres", regexp.MustCompile(`database system is ready to accept connections`), 1, 30*time.Second)
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

var processedLine = regexp.MustCompile(`number of transactions actually processed: (\d+)/(\d+)`)

// TestE2EPostgres runs pgbench (initialization and a run) and psql through
// `ferry forward`, and checks the bank's books balance afterwards.
func TestE2EPostgres(t *testing.T) {
	t.Parallel()
	pgAddr := startPostgres(t)
	g := startGateway(t, "127.0.0.1:1", pgAddr)
	addrs, _ := startForward(t, g, g.allToken, "postgres")
	host, port, _ := net.SplitHostPort(addrs["postgres"])
	env := []string{"PGCONNECT_TIMEOUT=10", "PGSSLMODE=disable", "PGPASSWORD=", "PGOPTIONS="}
	conn := []string{"-h", host, "-p", port, "-U", "postgres"}
	psql := func(sql string) string {
		t.Helper()
		argv := append(append([]string{filepath.Join(pgBin, "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"}, conn...), "-c", sql, "postgres")
		return strings.TrimSpace(runCmd(t, env, argv...))
	}
	if got := psql("select 1"); got != "1" {
		t.Fatalf("psql select 1: got %q", got)
	}

	// -i loads 100,000 accounts with COPY through the tunnel.
	runCmd(t, env, append(append([]string{filepath.Join(pgBin, "pgbench")}, conn...), "-i", "-s", "1", "postgres")...)
	if got := psql("select count(*) from pgbench_accounts"); got != "100000" {
		t.Fatalf("pgbench_accounts has %s rows, want 100000", got)
	}

	const clients, perClient = 4, 200
	out := runCmd(t, env, append(append([]string{filepath.Join(pgBin, "pgbench")}, conn...),
		"-c", strconv.Itoa(clients), "-j", "2", "-t", strconv.Itoa(perClient), "postgres")...)
	m := processedLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("pgbench printed no %q line:\n%s", processedLine, out)
	}
	want := strconv.Itoa(clients * perClient)
	if m[1] != want || m[2] != want {
		t.Fatalf("pgbench processed %s/%s transactions, want %s/%s:\n%s", m[1], m[2], want, want, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "tps =") || strings.HasPrefix(line, "latency average") {
			t.Logf("pgbench through ferry forward: %s", line)
		}
	}
	// Each transaction adds the same delta to an account and to history.
	if got := psql("select (select sum(abalance) from pgbench_accounts) = (select sum(delta) from pgbench_history) and (select count(*) from pgbench_history) = " + want); got != "t" {
		t.Fatalf("after pgbench the balances and history do not agree (%q)", got)
	}
}

// TestE2ECredentials checks refusals at the command line: `ferry forward`
// with a token that lacks postgres closes each local connection and says
// why on stderr, without the gateway dialing the backend; `ferry connect`
// with a wrong token, or none, exits non-zero saying the gateway refused
// (401); and with the right token it pipes stdin to a backend and back.
func TestE2ECredentials(t *testing.T) {
	t.Parallel()
	// "redis" is an echo server here; "postgres" counts the connections
	// that reach it, which must be none.
	echoAddr := tcpServer(t, func(c net.Conn) { io.Copy(c, c) })
	var mu sync.Mutex
	dialed := 0
	pgAddr := tcpServer(t, func(net.Conn) { mu.Lock(); dialed++; mu.Unlock() })
	g := startGateway(t, echoAddr, pgAddr)

	t.Run("forward forbidden", func(t *testing.T) {
		addrs, fwd := startForward(t, g, g.redisToken, "postgres")
		c, err := net.Dial("tcp", addrs["postgres"])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
			t.Errorf("a refused forward: read %q, %v; want the local connection closed", b, err)
		}
		line := fwd.stderr.wait(t, "ferry forward", regexp.MustCompile(`^ferry forward: .*forbidden.*`), 1, 30*time.Second)[0][0]
		if !strings.Contains(line, "postgres") {
			t.Errorf("ferry forward's error line does not name the service: %q", line)
		}
		t.Logf("ferry forward said: %s", line)
		mu.Lock()
		defer mu.Unlock()
		if dialed != 0 {
			t.Errorf("the gateway dialed the postgres backend %d times for a token that may not open it", dialed)
		}
	})

	connect := func(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, ferryPath(t), append([]string{"connect"}, args...)...)
		cmd.Env = append(os.Environ(), "FERRY_TOKEN=")
		cmd.Stdin = strings.NewReader(stdin)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		cmd.WaitDelay = 5 * time.Second
		err = cmd.Run()
		return o.String(), e.String(), err
	}

	for _, tc := range []struct {
		name  string
		token []string
	}{
		{"connect wrong token", []string{"-token", "d3JvbmctdG9rZW4tZm9yLWZlcnJ5LWUyZQ"}},
		{"connect no token", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := connect(t, "", append(tc.token, g.tunnelURL, "redis")...)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() <= 0 {
				t.Fatalf("ferry connect: %v, want a non-zero exit; stderr:\n%s", err, stderr)
			}
			if !strings.Contains(stderr, "refused") || !strings.Contains(stderr, "401") {
				t.Errorf("ferry connect's stderr does not say the gateway refused with 401:\n%s", stderr)
			}
			t.Logf("ferry connect said: %s", strings.TrimSpace(stderr))
		})
	}

	t.Run("connect forbidden", func(t *testing.T) {
		_, stderr, err := connect(t, "", "-token", g.redisToken, g.tunnelURL, "postgres")
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() <= 0 {
			t.Fatalf("ferry connect: %v, want a non-zero exit; stderr:\n%s", err, stderr)
		}
		if !strings.Contains(stderr, "forbidden") {
			t.Errorf("ferry connect's stderr does not say forbidden:\n%s", stderr)
		}
	})

	t.Run("connect allowed", func(t *testing.T) {
		in := strings.Repeat("ferry connect pipes stdin to the service and back\n", 2000)
		stdout, stderr, err := connect(t, in, "-token", g.redisToken, g.tunnelURL, "redis")
		if err != nil {
			t.Fatalf("ferry connect: %v; stderr:\n%s", err, stderr)
		}
		if stdout != in {
			t.Errorf("ferry connect to an echo service: got %d bytes back, want the %d sent", len(stdout), len(in))
		}
	})
}

// tcpServer runs handle for each connection to a listener on 127.0.0.1,
// closing the connection after it, until the test ends.
func tcpServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}
