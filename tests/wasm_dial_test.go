//go:build linux

package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// wasmDialEnd is how a dial made by suite.dialEnd ended.
type wasmDialEnd struct {
	OK, Aborted bool
	MS          float64
	Error       *wasmErr
}

// wasmEchoConfig is a gateway with the public echo service, and limits
// that let a page reconnect often.
const wasmEchoConfig = `
[limits]
max_sessions_per_ip = 1000
handshakes_per_second_per_ip = 1000
[services.echo]
backend = "builtin:echo"
public = true
`

// suitePage opens url in a new tab, loads the suite and ferry.js, and
// connects gateway "main" with connectOpts (a JavaScript object); it
// returns an eval that fails the test on an exception. When the test
// fails, the page's console is logged, and log too, if not nil.
func suitePage(ctx context.Context, t *testing.T, b *cdpBrowser, url, connectOpts string, log fmt.Stringer) func(expr string, out any) {
	t.Helper()
	p, err := b.openPage(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("page console:\n%s", p.console)
			if log != nil {
				t.Logf("log:\n%s", log)
			}
		}
	})
	eval := func(expr string, out any) {
		t.Helper()
		if err := p.eval(ctx, expr, out); err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
	}
	eval(wasmSuiteJS, nil)
	eval(`suite.load()`, nil)
	var c struct {
		OK    bool
		Error *wasmErr
	}
	eval(`suite.connect("main", `+connectOpts+`)`, &c)
	if !c.OK {
		t.Fatalf("connect: %+v", c.Error)
	}
	return eval
}

// wasmStats is what ferry.stats() counts.
type wasmStats struct{ Gateways, Sockets, Dials, WebSockets int }

// TestWasmDial runs gw.dial's options in headless Chromium against a
// gateway in this process: a dial aborted at once or during an outage
// rejects with the signal's reason and leaves stats() as it was; a dial
// during an outage rejects at its timeout with a FerryError that says
// why the tunnel is down; a dial after gw.close() rejects.
func TestWasmDial(t *testing.T) {
	t.Parallel()
	b := startCDPBrowser(t)
	g := startWasmGateway(t, wasmEchoConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	eval := suitePage(ctx, t, b, g.url("/healthz"), `{}`, nil)
	var base wasmStats
	eval(`suite.stats()`, &base)
	// checkStats compares stats() with base; during an outage, the
	// WebSockets of reconnection attempts come and go.
	checkStats := func(when string, outage bool) {
		t.Helper()
		var st wasmStats
		eval(`suite.stats()`, &st)
		if outage {
			st.WebSockets = base.WebSockets
		}
		if st != base {
			t.Errorf("%s: stats() is %+v, was %+v", when, st, base)
		}
	}

	// A dial with options that end nothing works as before.
	var end wasmDialEnd
	eval(`suite.dialEnd("main", "echo", { timeout: 5000 })`, &end)
	if !end.OK {
		t.Fatalf("a dial with a timeout of 5 s: %+v", end.Error)
	}
	checkStats("after a dial and close", false)

	// Aborted in the same task as the dial: while the open is on its way.
	for i := range 5 {
		eval(`suite.dialEnd("main", "echo", { abortAfter: 0 })`, &end)
		if end.OK || !end.Aborted || end.Error.Name != "AbortError" {
			t.Errorf("dial %d aborted at once: %+v, want a rejection with the signal's reason", i, end)
		}
	}
	checkStats("after dials aborted at once", false)

	// close() with a read pending on a socket and a dial on its way (which
	// once froze the page: see closeGateway in wasm/api.go); after it, a
	// dial rejects, and nothing is held.
	var closed struct {
		Before, After wasmDialEnd
		Stats         wasmStats
	}
	eval(`(async () => {
  const ferry = await import("/ferry/ferry.js");
  const gw = await ferry.connect();
  const end = (p) => p.then(() => ({ ok: true }), (e) => ({ ok: false, error: { name: e.name, message: e.message } }));
  const reading = (await gw.dial("echo")).readable.getReader().read().then(() => "read", () => "failed");
  const pending = end(gw.dial("echo"));
  await gw.close();
  if (await reading !== "failed") throw new Error("a read pending at close() did not fail");
  const after = await end(gw.dial("echo"));
  return { before: await pending, after, stats: await ferry.stats() };
})()`, &closed)
	if closed.After.OK || closed.After.Error == nil || closed.After.Error.Name != "FerryError" {
		t.Errorf("a dial after close(): %+v, want a FerryError", closed.After)
	}
	if closed.Before.OK {
		t.Errorf("a dial made just before close() resolved with a socket after it")
	}
	if closed.Stats.Sockets != base.Sockets || closed.Stats.Dials != 0 {
		t.Errorf("after close(): stats() is %+v", closed.Stats)
	}

	// An outage: the gateway stops, the page reconnects.
	var before int
	eval(`suite.statuses("main").length`, &before)
	g.stop()
	eval(fmt.Sprintf(`suite.waitStatus("main", "reconnecting", %d)`, before), nil)
	eval(`suite.dialEnd("main", "echo", { timeout: 30000, abortAfter: 300 })`, &end)
	if end.OK || !end.Aborted || end.MS > 10000 {
		t.Errorf("a dial aborted after 300 ms during an outage: %+v, want a rejection with the signal's reason", end)
	}
	checkStats("after a dial aborted during an outage", true)

	eval(`suite.dialEnd("main", "echo", { timeout: 1500 })`, &end)
	if e := end.Error; end.OK || e == nil || !e.IsFerryError || !strings.Contains(e.Message, "timed out after 1.5s while the tunnel is down") || e.Code == 0 {
		t.Errorf("a dial with a timeout of 1.5 s during an outage: %+v, want a FerryError that names the timeout and the close code of the outage", end)
	} else {
		t.Logf("after %.0f ms: %s (code %d)", end.MS, e.Message, e.Code)
	}
	if end.MS < 1400 || end.MS > 6000 {
		t.Errorf("the dial with a timeout of 1.5 s rejected after %.0f ms", end.MS)
	}
	checkStats("after a dial timed out during an outage", true)

	// Back up: the tunnel comes again and dials work.
	var seen int
	eval(`suite.statuses("main").length`, &seen)
	g.start()
	eval(fmt.Sprintf(`suite.waitStatus("main", "connected", %d)`, seen), nil)
	eval(`suite.dialEnd("main", "echo", { timeout: 5000 })`, &end)
	if !end.OK {
		t.Errorf("a dial after the gateway came back: %+v", end.Error)
	}

}

// TestWasmKeepaliveDeath runs the browser client against a ferry serve
// process that is then stopped with SIGSTOP: the tunnel goes silent
// without a close, the page's keepalive finds the gateway dead, and
// onstatus says reconnecting with 1011 "keepalive timeout"; after
// SIGCONT the page connects again.
func TestWasmKeepaliveDeath(t *testing.T) {
	t.Parallel()
	b := startCDPBrowser(t)
	file := filepath.Join(t.TempDir(), "gateway.toml")
	if err := os.WriteFile(file, []byte(wasmEchoConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := startProc(t, "ferry serve", []string{ferryPath(t), "serve", "-config", file, "-listen", "127.0.0.1:0"}, procOptions{stop: syscall.SIGKILL})
	tunnelURL := gw.stdout.wait(t, "ferry serve", servingLine, 1, 30*time.Second)[0][1]
	pid := gw.cmd.Process.Pid
	stopped := false
	resume := func() {
		if stopped {
			stopped = false
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Errorf("SIGCONT: %v", err)
			}
		}
	}
	t.Cleanup(resume) // before startProc's cleanup, which kills it

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	page := "http" + strings.TrimSuffix(strings.TrimPrefix(tunnelURL, "ws"), "/tunnel") + "/healthz"
	eval := suitePage(ctx, t, b, page, `{ keepalive: 400 }`, gw.stderr)
	var echo struct{ Text string }
	eval(`suite.echo("main", "echo", "before")`, &echo)

	var before int
	eval(`suite.statuses("main").length`, &before)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped = true
	start := time.Now()
	var rec struct {
		Index  int
		Status wasmStatus
	}
	eval(fmt.Sprintf(`suite.waitStatus("main", "reconnecting", %d)`, before), &rec)
	took := time.Since(start)
	if e := rec.Status.Error; e == nil || !e.IsFerryError || e.Code != 1011 || !strings.HasPrefix(e.Reason, "keepalive timeout") {
		t.Errorf("the page was told reconnecting with %+v when the gateway stopped; want a FerryError with 1011 and the keepalive reason", e)
	} else {
		t.Logf("onstatus after %s: reconnecting: %s (%d %q)", took.Round(time.Millisecond), e.Message, e.Code, e.Reason)
	}

	resume()
	eval(fmt.Sprintf(`suite.waitStatus("main", "connected", %d)`, rec.Index), nil)
	eval(`suite.echo("main", "echo", "after")`, &echo)
	if echo.Text != "after" {
		t.Errorf("after SIGCONT the echo gave %q", echo.Text)
	}
	eval(`suite.close("main")`, nil)
}
