package tests

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// sdkBenchLines is how many 100-byte lines one run of TestSDKBench reads.
const sdkBenchLines = 100_000

// TestSDKBench measures, in headless Chromium, the generated SDK's lines
// channel (messages(): framing, UTF-8 decoding, one string per message)
// against reading the same bytes from the raw socket of the same backend
// (the browser client's own ceiling), side by side, as a ratio. It prints
// a table; scripts/bench-browser runs it with FERRY_BENCH_BROWSER=1.
func TestSDKBench(t *testing.T) {
	br := startBenchBrowser(t)
	line := strings.Repeat("y", 99) + "\n"
	backend := tcpServer(t, func(c net.Conn) {
		buf := []byte(strings.Repeat(line, 1000))
		for range sdkBenchLines / 1000 {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	})
	g := startWasmGateway(t, fmt.Sprintf(`
[limits]
max_sessions_per_ip = 1000
[services.bench-lines]
backend = %q
public = true
framing = "lines"
max_message = "1KiB"
[services.bench-raw]
backend = %q
public = true
`, backend, backend))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := br.openPage(ctx, g.url("/healthz"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.eval(ctx, `(async () => {
  globalThis.sdk = await import("/ferry/sdk.js");
  globalThis.api = await sdk.connect();
})()`, nil); err != nil {
		t.Fatalf("%v\n%s", err, p.console)
	}
	const linesJS = `(async () => {
  const ch = await api.benchLines();
  const t0 = performance.now();
  let n = 0;
  for await (const m of ch.messages()) { if (m.length !== 99) throw new Error("line of " + m.length); n++; }
  const ms = performance.now() - t0;
  await ch.close();
  return { MS: ms, N: n };
})()`
	const rawJS = `(async () => {
  const s = await api.benchRaw();
  const t0 = performance.now();
  let n = 0;
  const r = s.readable.getReader();
  for (;;) { const { value, done } = await r.read(); if (done) break; n += value.length; }
  const ms = performance.now() - t0;
  r.releaseLock();
  await s.close();
  return { MS: ms, N: n / 100 };
})()`
	type run struct{ MS, N float64 }
	var lines, raw, ratio []float64
	for i := range 5 {
		var l, r run
		order := []struct {
			js  string
			out *run
		}{{linesJS, &l}, {rawJS, &r}}
		if i%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, o := range order {
			if err := p.eval(ctx, o.js, o.out); err != nil {
				t.Fatalf("%v\n%s", err, p.console)
			}
		}
		if l.N != sdkBenchLines || r.N != sdkBenchLines {
			t.Fatalf("read %v lines through messages() and %v through the socket, want %d", l.N, r.N, sdkBenchLines)
		}
		lines = append(lines, sdkBenchLines/l.MS*1000)
		raw = append(raw, sdkBenchLines/r.MS*1000)
		ratio = append(ratio, r.MS/l.MS)
	}
	median := func(xs []float64) float64 {
		s := slices.Clone(xs)
		slices.Sort(s)
		return s[len(s)/2]
	}
	fmt.Printf("\nthe SDK's lines channel in headless Chromium: %d lines of 100 bytes per run, 5 runs (median)\n\n", sdkBenchLines)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tmessages() (lines/s)\traw socket reads (lines' bytes/s)\tratio\t")
	fmt.Fprintf(tw, "lines, 100 B\t%.0f\t%.0f\t%.2f×\t\n", median(lines), median(raw), median(ratio))
	tw.Flush()
}
