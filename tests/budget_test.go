//go:build linux

package tests

// The memory budget, measured on a separate `ferry serve` process (built
// without -race): sessions that open their streams to the echo service,
// write and never read. The figures are the gateway's VmRSS after it has
// settled, against its own accounting (ferry_buffer_reserved_bytes) and
// the targets of the hardening work.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/tunnel"
)

// budgetGateway runs `ferry serve` with the default limits plus extra
// limits, a public echo service and the admin listener.
type budgetGateway struct {
	url, admin string
	pid        int
}

var adminLine = regexp.MustCompile(`^ferry: admin endpoints at (http://\S+)/metrics`)

func startBudgetGateway(t *testing.T, limits string) *budgetGateway {
	t.Helper()
	cfg := "[limits]\nmax_sessions_per_ip = 1000\nhandshakes_per_second_per_ip = 1000\n" + limits +
		"\n[admin]\nlisten = \"127.0.0.1:0\"\n\n[services.echo]\nbackend = \"builtin:echo\"\npublic = true\n"
	file := filepath.Join(t.TempDir(), "gateway.toml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "ferry serve", []string{ferryPath(t), "serve", "-config", file, "-listen", "127.0.0.1:0"}, procOptions{stop: syscall.SIGKILL})
	g := &budgetGateway{pid: p.cmd.Process.Pid}
	g.url = p.stdout.wait(t, "ferry serve", servingLine, 1, 30*time.Second)[0][1]
	g.admin = p.stdout.wait(t, "ferry serve admin", adminLine, 1, 30*time.Second)[0][1]
	return g
}

// rss returns the gateway's resident set size.
func (g *budgetGateway) rss(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// metric reads one value from the gateway's /metrics.
func (g *budgetGateway) metric(t *testing.T, name string) int64 {
	t.Helper()
	resp, err := http.Get(g.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64) // the text format may write 5.6e+07
			if err != nil {
				t.Fatal(err)
			}
			return int64(f)
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// settled waits until the gateway's RSS has stopped moving (less than 1%
// over half a second, at most 30 s) and returns it.
func (g *budgetGateway) settled(t *testing.T) int64 {
	t.Helper()
	last := g.rss(t)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		time.Sleep(500 * time.Millisecond)
		now := g.rss(t)
		if d := now - last; d*100 < last && -d*100 < last {
			return now
		}
		last = now
	}
	return last
}

// hoard opens one session that opens up to streams streams to echo and
// writes to each until the gateway stops taking bytes, never reading. It
// returns the streams it got and the refusals by status; a session the
// gateway refused (503: the budget cannot take its fixed share) counts as
// refused with status 9.
func hoard(t *testing.T, url string, streams int) (int, map[tunnel.OpenStatus]int) {
	t.Helper()
	refused := map[tunnel.OpenStatus]int{}
	s, err := client.Connect(context.Background(), url, &client.Options{MinBackoff: time.Hour})
	var re *client.RefusedError
	if errors.As(err, &re) && re.Status == http.StatusServiceUnavailable && strings.Contains(err.Error(), "buffer budget") {
		refused[tunnel.OpenBusy]++
		return 0, refused
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var written atomic.Int64
	chunk := make([]byte, 64<<10)
	rand.Read(chunk)
	got := 0
	for i := 0; i < streams; i++ {
		c, err := s.Dial(context.Background(), "echo")
		var oe *tunnel.OpenError
		if errors.As(err, &oe) {
			refused[oe.Status]++
			continue
		}
		if err != nil {
			t.Logf("stream %d: %v", i, err) // the gateway closed the session
			break
		}
		got++
		go func() {
			for {
				if _, err := c.Write(chunk); err != nil {
					return
				}
				written.Add(int64(len(chunk)))
			}
		}()
	}
	// The writers block once every window on the way is full.
	for last := int64(-1); written.Load() != last; time.Sleep(300 * time.Millisecond) {
		last = written.Load()
	}
	return got, refused
}

// echoRate moves n bytes through a stream of a fresh session and back,
// checks them, and returns bytes per second.
func echoRate(t *testing.T, url string, n int) float64 {
	t.Helper()
	s, err := client.Connect(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.Dial(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := make([]byte, n)
	rand.Read(data)
	start := time.Now()
	go func() { c.Write(data); c.CloseWrite() }()
	got, err := io.ReadAll(c)
	elapsed := time.Since(start)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("echo of %d bytes: got %d, %v", n, len(got), err)
	}
	return float64(n) / elapsed.Seconds()
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// TestMemoryBudget: one never-reading session on the default limits grows
// the gateway by at most 64 MiB, within what the gateway's own accounting
// says it reserved; ten of them against a 256 MiB budget stay under it,
// the streams that do not fit refused as busy; and a well-behaved session
// beside them still moves its bytes (its rate beside them and alone are
// logged: timing is the benchmark's business, scripts/bench-budget).
func TestMemoryBudget(t *testing.T) {
	t.Run("one session, default limits", func(t *testing.T) {
		g := startBudgetGateway(t, "")
		echoRate(t, g.url, 1<<20) // warm up: pools, a first session
		base := g.settled(t)
		got, refused := hoard(t, g.url, 64)
		if got != 64 || len(refused) != 0 {
			t.Fatalf("the hoarder got %d streams, refusals %v", got, refused)
		}
		rss := g.settled(t)
		reserved := g.metric(t, "ferry_buffer_reserved_bytes")
		t.Logf("one never-reading session, 64 streams: RSS %s -> %s (+%s); reserved %s", mib(base), mib(rss), mib(rss-base), mib(reserved))
		if rss-base > 64<<20 {
			t.Errorf("the gateway grew by %s, more than 64 MiB", mib(rss-base))
		}
		// The accounting covers what the streams hold, garbage not yet
		// collected included (config.Limits.StreamCost).
		if rss-base > reserved {
			t.Errorf("the gateway grew by %s, more than the %s it accounts for", mib(rss-base), mib(reserved))
		}
	})
	t.Run("ten sessions, 256 MiB budget", func(t *testing.T) {
		const budget = 256 << 20
		g := startBudgetGateway(t, "buffer_budget = \"256MiB\"\n")
		// A well-behaved session, open before the hoarders come.
		good, err := client.Connect(context.Background(), g.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer good.Close()
		c, err := good.Dial(context.Background(), "echo")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		unloaded := echoThrough(t, c, 32<<20)
		base := g.settled(t)
		total, busy := 0, 0
		for i := 0; i < 10; i++ {
			got, refused := hoard(t, g.url, 64)
			total += got
			busy += refused[tunnel.OpenBusy]
			for st, n := range refused {
				if st != tunnel.OpenBusy {
					t.Fatalf("hoarder %d: %d streams refused with %v", i, n, st)
				}
			}
		}
		rss := g.settled(t)
		reserved := g.metric(t, "ferry_buffer_reserved_bytes")
		t.Logf("ten never-reading sessions: %d streams, %d refused as busy; RSS %s -> %s (+%s); reserved %s of %s",
			total, busy, mib(base), mib(rss), mib(rss-base), mib(reserved), mib(budget))
		if busy == 0 {
			t.Error("no stream was refused as busy: the budget did not bind")
		}
		if reserved > budget {
			t.Errorf("reserved %s, over the budget", mib(reserved))
		}
		if rss-base > budget {
			t.Errorf("the gateway grew by %s, over the %s budget", mib(rss-base), mib(budget))
		}
		loaded := echoThrough(t, c, 32<<20)
		t.Logf("a well-behaved session: %.0f MB/s alone, %.0f MB/s beside the hoarders (%.2fx)", unloaded/1e6, loaded/1e6, loaded/unloaded)
	})
}

// echoThrough sends n random bytes through an echo stream while reading
// them back, checks them, and returns bytes per second.
func echoThrough(t *testing.T, c io.ReadWriter, n int) float64 {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); c.Write(data) }()
	got := make([]byte, n)
	_, err := io.ReadFull(c, got)
	wg.Wait()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("echo of %d bytes: %v", n, err)
	}
	return float64(n) / time.Since(start).Seconds()
}
