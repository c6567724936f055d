//go:build linux

package tests

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// exposeBrowserStreams and exposeBrowserSize are the parallel streams the
// page sends through the exposed service, and the random bytes on each.
const (
	exposeBrowserStreams = 4
	exposeBrowserSize    = 1 << 20
)

// TestExposeBrowser reaches an exposed service from headless Chromium
// through the browser client: a TCP echo that the gateway's config does
// not name (it stands in for a host behind NAT), served by a `ferry
// expose` process, in a page of the gateway. Before the exposer registers
// the page's dial is refused with status 10; then streams of random bytes
// come back whole (SHA-256 on the page and at the echo) and the page
// cannot tell the service from a configured one; once the exposer has
// exited, dials are refused with status 10 again.
func TestExposeBrowser(t *testing.T) {
	t.Parallel()
	b := startCDPBrowser(t)
	hashes := make(chan string, 2*exposeBrowserStreams)
	echoAddr := hashEchoBackend(t, hashes)
	exposeTok, exposeHash := newToken(t)
	pageTok, pageHash := newToken(t)
	g := startWasmGateway(t, fmt.Sprintf(`
[limits]
max_sessions_per_ip = 1000
handshakes_per_second_per_ip = 1000
[services.laptop-echo]
backend = "expose"
description = "An echo behind NAT, served by ferry expose."
[[tokens]]
name = "laptop"
sha256 = %q
expose = ["laptop-echo"]
[[tokens]]
name = "page"
sha256 = %q
services = ["laptop-echo"]
`, exposeHash, pageHash))
	tunnelURL := "ws://" + g.addr + "/tunnel"

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := b.openPage(ctx, g.url("/healthz"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("page console:\n%s", p.console)
		}
	}()
	eval := func(expr string, out any) {
		t.Helper()
		if err := p.eval(ctx, expr, out); err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
	}
	if err := p.eval(ctx, wasmSuiteJS, nil); err != nil {
		t.Fatal(err)
	}
	eval(`suite.load()`, nil)
	var c struct {
		OK    bool
		Error *wasmErr
	}
	eval(fmt.Sprintf(`suite.connect("main", {token: %q})`, pageTok), &c)
	if !c.OK {
		t.Fatalf("connect: %+v", c.Error)
	}

	notExposed := func(when string) {
		t.Helper()
		var got struct {
			OK    bool
			Error *wasmErr
		}
		eval(`suite.dialError("main", "laptop-echo")`, &got)
		if got.OK || got.Error == nil {
			t.Fatalf("%s: the dial succeeded", when)
		}
		if e := got.Error; e.Code != 10 || !e.IsFerryError || !strings.Contains(e.Reason, "no client exposes laptop-echo") {
			t.Errorf("%s: got %+v; want a FerryError with code 10 (not exposed) and the gateway's reason", when, *e)
		}
	}
	notExposed("before ferry expose")

	exposer := startProc(t, "ferry expose", []string{ferryPath(t), "expose", "-token", exposeTok, "-id", "browser-test",
		tunnelURL, "laptop-echo=" + echoAddr}, procOptions{stop: syscall.SIGTERM})
	m := exposer.stdout.wait(t, "ferry expose", exposingLine, 1, 30*time.Second)[0]
	if m[1] != "laptop-echo" || m[2] != echoAddr || m[3] != "browser-test" {
		t.Fatalf("ferry expose printed %q", m[0])
	}

	// The page sees what it sees of a configured service.
	var echoed struct {
		Text   string
		Opened struct{ Service string }
	}
	text := "hello through a reverse tunnel, τ"
	eval(fmt.Sprintf(`suite.echo("main", "laptop-echo", %q)`, text), &echoed)
	if echoed.Text != text || echoed.Opened.Service != "laptop-echo" {
		t.Errorf("echo: got %+v, want %q back from laptop-echo", echoed, text)
	}
	select {
	case <-hashes:
	case <-ctx.Done():
		t.Fatal("the echo behind ferry expose did not see the stream end")
	}

	var bulk wasmBulk
	eval(fmt.Sprintf(`suite.bulk("main", "laptop-echo", %d, %d)`, exposeBrowserStreams, exposeBrowserSize), &bulk)
	checkBulk(t, ctx, bulk, exposeBrowserStreams, exposeBrowserSize, hashes, "the echo behind ferry expose")
	t.Logf("%d streams × %d MiB echoed through ferry expose in %.0f ms: %.1f MB/s both ways together",
		exposeBrowserStreams, exposeBrowserSize>>20, bulk.MS, bulk.MBps)

	// The exposer ends (SIGTERM withdraws its registration); once its
	// process has exited, no dial reaches the echo, and the gateway, as
	// soon as it has seen the tunnel end, answers status 10.
	if err := exposer.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exposer.exited:
	case <-ctx.Done():
		t.Fatal("ferry expose did not exit on SIGTERM")
	}
	var after struct {
		Codes []int
		Last  *wasmErr
	}
	eval(`(async () => {
  const codes = [];
  const deadline = performance.now() + 10000;
  for (;;) {
    const r = await suite.dialError("main", "laptop-echo");
    if (r.ok) return { codes: codes.concat([0]), last: null };
    codes.push(r.error.code);
    if (r.error.code === 10 || performance.now() > deadline) return { codes, last: r.error };
    // The gateway has not yet seen the exposer's tunnel end: look again.
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
})()`, &after)
	if slices.Contains(after.Codes, 0) {
		t.Fatalf("a dial after ferry expose exited succeeded (codes %v)", after.Codes)
	}
	if after.Last == nil || after.Last.Code != 10 || !strings.Contains(after.Last.Reason, "no client exposes laptop-echo") {
		t.Errorf("after ferry expose exited, dials were refused with codes %v, the last %+v; want status 10 within 10 s", after.Codes, after.Last)
	}
	if len(after.Codes) > 1 {
		t.Logf("after ferry expose exited: codes %v before status 10", after.Codes)
	}
}
