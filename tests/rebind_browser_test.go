//go:build linux

package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/gateway"
)

// TestBrowserRebinding plays DNS rebinding against a gateway on loopback
// with a real browser: Chromium's resolver maps rebind.example (the
// attacker's name, rebound) and allowed.example (a name the config lists
// in allowed_hosts) to 127.0.0.1, so no DNS server is needed. A page of
// http://rebind.example:PORT is same-origin with the gateway by Origin and
// Host, and must still get no tunnel: its page load and the assets are
// refused with 403, and a WebSocket to the gateway by that name fails,
// whether opened from that page, by ferry.js loaded from 127.0.0.1, or
// from a page of 127.0.0.1. Pages of 127.0.0.1, localhost and
// allowed.example keep working: the demo page connects and has its hello
// echoed by the public echo service.
func TestBrowserRebinding(t *testing.T) {
	t.Parallel()
	b := startCDPBrowser(t, "--host-resolver-rules=MAP rebind.example 127.0.0.1, MAP allowed.example 127.0.0.1")
	g := startWasmGateway(t, `
[server]
allowed_hosts = ["allowed.example"]
[limits]
handshakes_per_second_per_ip = 1000
[services.echo]
backend = "builtin:echo"
public = true
`)
	_, port, _ := net.SplitHostPort(g.addr)
	stats := func() gateway.Stats {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.srv.Stats()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// navStatus is the HTTP status and text of the page's own load.
	type navStatus struct {
		Status int
		Text   string
	}
	const navJS = `({status: performance.getEntriesByType("navigation")[0].responseStatus, text: document.body ? document.body.innerText : ""})`
	// wsJS opens a WebSocket offering ferry.v1 and tells whether it opened.
	wsJS := func(url string) string {
		u, _ := json.Marshal(url)
		return fmt.Sprintf(`new Promise((resolve) => {
  const ws = new WebSocket(%s, ["ferry.v1"]);
  let opened = false;
  ws.onopen = () => { opened = true; ws.close(1000); };
  ws.onclose = (e) => resolve({opened, code: e.code});
})`, u)
	}
	type wsResult struct {
		Opened bool
		Code   int
	}
	open := func(t *testing.T, url string) *cdpPage {
		t.Helper()
		p, err := b.openPage(ctx, url)
		if err != nil {
			t.Fatalf("open %s: %v", url, err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("console of %s:\n%s", url, p.console)
			}
		})
		return p
	}
	eval := func(t *testing.T, p *cdpPage, expr string, out any) {
		t.Helper()
		if err := p.eval(ctx, expr, out); err != nil {
			t.Fatalf("%.60s: %v", expr, err)
		}
	}

	for _, host := range []string{"127.0.0.1", "localhost", "allowed.example"} {
		t.Run("works from "+host, func(t *testing.T) {
			origin := "http://" + net.JoinHostPort(host, port)
			p := open(t, origin+"/")
			var nav navStatus
			eval(t, p, navJS, &nav)
			if nav.Status != 200 {
				t.Fatalf("the demo page at %s/: %d %q", origin, nav.Status, nav.Text)
			}
			eval(t, p, wasmSuiteJS, nil)
			var got struct {
				Log, State string
			}
			eval(t, p, `suite.demoEcho()`, &got)
			if strings.Count(got.Log, "hello from Chrom") != 2 || !strings.HasPrefix(got.State, "connected") {
				t.Errorf("the demo page at %s shows the tunnel %q and the log:\n%s\nwant its hello sent and echoed", origin, got.State, got.Log)
			}
		})
	}

	before := stats()
	rebind := "rebind.example:" + port
	t.Run("refused for rebind.example", func(t *testing.T) {
		p := open(t, "http://"+rebind+"/")
		var nav navStatus
		eval(t, p, navJS, &nav)
		if want := fmt.Sprintf("host %q is not in [server] allowed_hosts", rebind); nav.Status != 403 || !strings.Contains(nav.Text, want) {
			t.Errorf("the page at http://%s/: %d %.200q, want 403 saying %q", rebind, nav.Status, nav.Text, want)
		}
		var fetched struct{ Asset, Health int }
		eval(t, p, `(async () => ({asset: (await fetch("/ferry/ferry.js")).status, health: (await fetch("/healthz")).status}))()`, &fetched)
		if fetched.Asset != 403 || fetched.Health != 200 {
			t.Errorf("from the rebound page, /ferry/ferry.js answered %d (want 403) and /healthz %d (want 200)", fetched.Asset, fetched.Health)
		}
		// The attacker's script, same-origin by Origin and Host.
		var ws wsResult
		eval(t, p, wsJS("ws://"+rebind+"/tunnel"), &ws)
		if ws.Opened {
			t.Errorf("a WebSocket to ws://%s/tunnel from its own page opened", rebind)
		}
		// The same with the real client, loaded from where it is served.
		eval(t, p, wasmSuiteJS, nil)
		eval(t, p, fmt.Sprintf(`suite.load(%q)`, "http://127.0.0.1:"+port+"/ferry/ferry.js"), nil)
		var c struct {
			OK    bool
			Error *wasmErr
		}
		eval(t, p, fmt.Sprintf(`suite.connect("rebind", {url: %q})`, "ws://"+rebind+"/tunnel"), &c)
		if c.OK {
			t.Errorf("ferry.connect(ws://%s/tunnel) from the rebound page got a tunnel", rebind)
		} else {
			t.Logf("ferry.connect from the rebound page: %+v", c.Error)
		}
	})
	t.Run("refused from a page of 127.0.0.1 to rebind.example", func(t *testing.T) {
		p := open(t, "http://127.0.0.1:"+port+"/healthz")
		var ws wsResult
		eval(t, p, wsJS("ws://"+rebind+"/tunnel"), &ws)
		if ws.Opened {
			t.Errorf("a WebSocket to ws://%s/tunnel from a page of 127.0.0.1 opened", rebind)
		}
		// The same page reaches the gateway by its address.
		eval(t, p, wsJS("ws://127.0.0.1:"+port+"/tunnel"), &ws)
		if !ws.Opened {
			t.Errorf("a WebSocket to ws://127.0.0.1:%s/tunnel did not open (close %d)", port, ws.Code)
		}
	})
	after := stats()
	// The page, ferry.js, the bare WebSocket, ferry.connect (at least one
	// handshake) and the WebSocket from 127.0.0.1: each refused for its Host.
	if n := after.RefusedHost - before.RefusedHost; n < 5 {
		t.Errorf("the gateway refused %d requests for their Host, want at least 5", n)
	}
	if n := after.Sessions - before.Sessions; n != 1 {
		t.Errorf("the gateway accepted %d tunnels meanwhile, want 1 (from 127.0.0.1)", n)
	}
}
