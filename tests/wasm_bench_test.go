//go:build linux

package tests

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/ferrygw/ferry/compress"
	"github.com/ferrygw/ferry/tunnel"
	"github.com/ferrygw/ferry/wasm/assets"
)

// wasmBenchSize is what one stream carries in BenchmarkWasmBrowser.
const wasmBenchSize = 128 << 20

// sinkBackend reads size bytes from each connection, then writes one
// byte (the acknowledgement the page waits for) and reads to the end.
func sinkBackend(t *testing.T, size int64) string {
	return tcpServer(t, func(c net.Conn) {
		if _, err := io.CopyN(io.Discard, c, size); err != nil {
			return
		}
		if _, err := c.Write([]byte{1}); err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, c)
	})
}

// wsSink is a plain WebSocket server (package tunnel) that reads binary
// messages until it has size bytes, then sends one 1-byte message and
// reads until the close: what a page's own WebSocket can do.
func wsSink(t *testing.T, size int64, opts *compress.Options) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := tunnel.Accept(w, r, &tunnel.AcceptOptions{ReadLimit: 64 << 20, Compression: opts})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := context.Background()
		var n int64
		var buf []byte
		for n < size {
			_, msg, err := c.ReadAppend(ctx, buf[:0])
			if err != nil {
				return
			}
			buf = msg
			n += int64(len(msg))
		}
		if err := c.Write(ctx, tunnel.MessageBinary, []byte{1}); err != nil {
			return
		}
		for {
			if _, _, err := c.ReadAppend(ctx, buf[:0]); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// wasmFirstEchoJS resolves with when the demo page had its first byte
// echoed: its mark ferry:first-echo, in ms since navigation started.
const wasmFirstEchoJS = `new Promise((resolve) => {
  const mark = () => performance.getEntriesByName("ferry:first-echo")[0];
  if (mark()) return resolve(mark().startTime);
  new PerformanceObserver((list, obs) => { if (mark()) { obs.disconnect(); resolve(mark().startTime); } }).observe({ entryTypes: ["mark"] });
})`

type wasmRate struct{ MS, MBps float64 }

// wasmBenchRounds is how many times each rate is measured; the report
// gives medians. Each round measures both paths back to back, so that the
// ratio of a round compares them under the same load.
const wasmBenchRounds = 5

// TestWasmBench measures, in headless Chromium, the throughput of one
// stream from a page through the gateway to a TCP sink, and of the same
// bytes through a plain browser WebSocket to a Go sink in the same run
// (the browser's own ceiling), with compression off and on; and the time
// from loading the demo page to its first byte echoed, on a first visit
// and on later ones (assets cached). It prints a table. scripts/bench-browser
// runs it with FERRY_BENCH_BROWSER=1; otherwise it is skipped.
func TestWasmBench(t *testing.T) {
	br := startBenchBrowser(t)
	sink := sinkBackend(t, wasmBenchSize)
	type row struct {
		name                string
		ferry, plain, ratio []float64
	}
	var rows []row
	var cold float64
	var warm []float64
	firstEcho := func(ctx context.Context, p *cdpPage) float64 {
		var ms float64
		if err := p.eval(ctx, wasmFirstEchoJS, &ms); err != nil {
			t.Fatalf("first echo: %v\n%s", err, p.console)
		}
		return ms
	}
	for _, deflate := range []bool{false, true} {
		g := startWasmGateway(t, fmt.Sprintf(`
[compression]
enabled = %v
[limits]
max_sessions_per_ip = 1000
handshakes_per_second_per_ip = 1000
[services.echo]
backend = "builtin:echo"
public = true
[services.sink]
backend = %q
public = true
`, deflate, sink))
		var opts *compress.Options
		if deflate {
			opts = &compress.Options{Threshold: 256}
		}
		plainURL := wsSink(t, wasmBenchSize, opts)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		p, err := br.openPage(ctx, g.url("/"))
		if err != nil {
			t.Fatal(err)
		}
		if !deflate {
			cold = firstEcho(ctx, p)
			for range 3 {
				if err := p.navigate(ctx, g.url("/")); err != nil {
					t.Fatal(err)
				}
				warm = append(warm, firstEcho(ctx, p))
			}
		}
		r := row{name: map[bool]string{false: "compression off", true: "permessage-deflate"}[deflate]}
		for _, expr := range []string{wasmSuiteJS, `suite.load()`, `suite.connect("bench")`} {
			if err := p.eval(ctx, expr, nil); err != nil {
				t.Fatalf("%.40s: %v\n%s", expr, err, p.console)
			}
		}
		for i := range wasmBenchRounds {
			var f, pl wasmRate
			ferry := func() {
				if err := p.eval(ctx, fmt.Sprintf(`suite.sink("bench", "sink", %d)`, wasmBenchSize), &f); err != nil {
					t.Fatalf("sink through the gateway: %v\n%s", err, p.console)
				}
			}
			plain := func() {
				if err := p.eval(ctx, fmt.Sprintf(`suite.rawSink(%q, %d)`, plainURL, wasmBenchSize), &pl); err != nil {
					t.Fatalf("plain WebSocket sink: %v\n%s", err, p.console)
				}
			}
			if i%2 == 0 {
				ferry()
				plain()
			} else {
				plain()
				ferry()
			}
			r.ferry = append(r.ferry, f.MBps)
			r.plain = append(r.plain, pl.MBps)
			r.ratio = append(r.ratio, f.MBps/pl.MBps)
		}
		cancel()
		rows = append(rows, r)
		g.stop()
	}
	median := func(xs []float64) float64 {
		s := slices.Clone(xs)
		slices.Sort(s)
		return s[len(s)/2]
	}
	fmt.Printf("\none stream from headless Chromium to a TCP sink, %d MiB of random bytes per run, %d runs each (median; each run's ratio compares the two paths back to back)\n\n", wasmBenchSize>>20, wasmBenchRounds)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tferry.js + gateway (MB/s)\tplain WebSocket (MB/s)\tratio\tratios\t")
	for _, r := range rows {
		var ratios []string
		for _, x := range r.ratio {
			ratios = append(ratios, fmt.Sprintf("%.2f", x))
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.2f×\t%s\t\n", r.name, median(r.ferry), median(r.plain), median(r.ratio), strings.Join(ratios, " "))
	}
	tw.Flush()
	fmt.Printf("\ndemo page, navigation start to first byte echoed (fetch ferry.js, wasm_exec.js, client.wasm; start; connect; dial echo):\nfirst visit %.0f ms, later visits (cached) median %.0f ms\n", cold, median(warm))
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("load average during the run: %s\n", strings.Join(strings.Fields(string(la))[:3], " "))
	}
}

// startBenchBrowser skips a browser benchmark unless FERRY_BENCH_BROWSER
// is 1 (scripts/bench-browser), and starts the browser.
func startBenchBrowser(t *testing.T) *cdpBrowser {
	t.Helper()
	if os.Getenv("FERRY_BENCH_BROWSER") != "1" {
		t.Skip("set FERRY_BENCH_BROWSER=1 (scripts/bench-browser) to run the browser benchmark")
	}
	return startCDPBrowser(t)
}

// wasmLoadRounds is how many times TestWasmBenchLoad loads the demo page
// for each encoding and network; the report gives medians.
const wasmLoadRounds = 9

// TestWasmBenchLoad measures, in headless Chromium, the time from loading
// the demo page to its first byte echoed (fetch ferry.js, wasm_exec.js and
// client.wasm; compile; start; connect; dial echo), on a first visit
// (empty cache) and on a later one (cached), with client.wasm brotli'ed
// and gzip'ed, side by side, over loopback and over a network emulated at
// 10 Mbit/s down with 40 ms of latency. It prints a table with ratios.
// scripts/bench-browser runs it with FERRY_BENCH_BROWSER=1; otherwise it
// is skipped. A first round warms up and is not counted.
func TestWasmBenchLoad(t *testing.T) {
	b := startBenchBrowser(t)
	g := startWasmGateway(t, wasmEchoConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	url := g.localhostURL("/")
	type result struct{ cold, cached []float64 }
	networks := []struct {
		name       string
		conditions map[string]any
	}{
		{"loopback", nil},
		{"10 Mbit/s, 40 ms", map[string]any{"offline": false, "latency": 40, "downloadThroughput": 10e6 / 8, "uploadThroughput": 5e6 / 8}},
	}
	encodings := []struct{ name, accept string }{{"brotli", ""}, {"gzip", "gzip, deflate"}}
	results := map[string]*result{}
	for _, nw := range networks {
		// One tab per encoding, loaded in turns, the order swapped each
		// round, so that both see the same machine.
		pages := make([]*cdpPage, len(encodings))
		for i, enc := range encodings {
			p, err := b.openPage(ctx, "about:blank")
			if err != nil {
				t.Fatal(err)
			}
			setup := map[string]map[string]any{"Network.enable": {}}
			if enc.accept != "" {
				setup["Network.setExtraHTTPHeaders"] = map[string]any{"headers": map[string]string{"Accept-Encoding": enc.accept}}
			}
			if nw.conditions != nil {
				setup["Network.emulateNetworkConditions"] = nw.conditions
			}
			// Network.enable first: the others need it.
			for _, m := range []string{"Network.enable", "Network.setExtraHTTPHeaders", "Network.emulateNetworkConditions"} {
				if params, ok := setup[m]; ok {
					if _, err := b.call(ctx, p.sessionID, m, params); err != nil {
						t.Fatal(err)
					}
				}
			}
			pages[i] = p
			results[nw.name+"/"+enc.name] = &result{}
		}
		for round := range wasmLoadRounds + 1 {
			for k := range encodings {
				i := (k + round) % len(encodings)
				p, r := pages[i], results[nw.name+"/"+encodings[i].name]
				for _, cached := range []bool{false, true} {
					if !cached {
						if _, err := b.call(ctx, p.sessionID, "Network.clearBrowserCache", map[string]any{}); err != nil {
							t.Fatal(err)
						}
					}
					if err := p.navigate(ctx, url); err != nil {
						t.Fatal(err)
					}
					var ms float64
					if err := p.eval(ctx, wasmFirstEchoJS, &ms); err != nil {
						t.Fatalf("first echo: %v\n%s", err, p.console)
					}
					switch {
					case round == 0: // warming up
					case cached:
						r.cached = append(r.cached, ms)
					default:
						r.cold = append(r.cold, ms)
					}
				}
				if err := p.navigate(ctx, "about:blank"); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	median := func(xs []float64) float64 {
		s := slices.Clone(xs)
		slices.Sort(s)
		return s[len(s)/2]
	}
	fmt.Printf("\ndemo page, navigation start to first byte echoed, median of %d loads (client.wasm %d bytes brotli'ed, %d gzip'ed)\n\n",
		wasmLoadRounds, len(assets.ClientWasmBrotli), len(assets.ClientWasmGzip))
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "network\tvisit\tbrotli (ms)\tgzip (ms)\tbrotli / gzip\t")
	for _, nw := range networks {
		br, gz := results[nw.name+"/brotli"], results[nw.name+"/gzip"]
		for _, row := range []struct {
			visit  string
			br, gz []float64
		}{{"first (cold)", br.cold, gz.cold}, {"later (cached)", br.cached, gz.cached}} {
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%.2f×\t\n", nw.name, row.visit, median(row.br), median(row.gz), median(row.br)/median(row.gz))
		}
	}
	tw.Flush()
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("load average during the run: %s\n", strings.Join(strings.Fields(string(la))[:3], " "))
	}
}
