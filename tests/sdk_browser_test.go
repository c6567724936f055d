package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// lineFlood writes numbered 1 KiB lines ("000042 xxx...\n") to each
// connection until 64 MiB are out, through a stallWriter.
func lineFlood(t *testing.T, stalls chan<- floodStall) string {
	return tcpServer(t, func(c net.Conn) {
		w := &stallWriter{c: c, stalls: stalls}
		for n := 0; w.written < 64<<20; n++ {
			if w.write([]byte(fmt.Sprintf("%06d %s\n", n, strings.Repeat("x", 1016)))) != nil {
				return
			}
		}
	})
}

// TestSDKBrowser imports the live /ferry/sdk.js in headless Chromium, from
// a page of the gateway, and uses its generated methods: a raw service to
// a real Redis, a lines service to an echo, and a lines service whose
// backend writes without end, read by a consumer that stops: the backend's
// writes block (within the bound of TestWasmBrowser's backpressure test,
// windows and socket buffers) instead of the page buffering them, and the
// messages read after are whole and in order.
func TestSDKBrowser(t *testing.T) {
	t.Parallel()
	redisPeer.require(t)
	b := startCDPBrowser(t)
	redisAddr := startRedis(t)
	stalls := make(chan floodStall, 1)
	floodAddr := lineFlood(t, stalls)
	g := startWasmGateway(t, fmt.Sprintf(`
[limits]
max_sessions_per_ip = 1000
handshakes_per_second_per_ip = 1000
[services.redis-cache]
backend = %q
public = true
[services.chat]
backend = "builtin:echo"
public = true
framing = "lines"
max_message = "1KiB"
[services.line-flood]
backend = %q
public = true
framing = "lines"
max_message = "2KiB"
[services.secret]
backend = "builtin:echo"
`, redisAddr, floodAddr))

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
	eval := func(t *testing.T, expr string, out any) {
		t.Helper()
		if err := p.eval(ctx, expr, out); err != nil {
			t.Fatalf("%v", err)
		}
	}
	eval(t, `(async () => {
  globalThis.sdk = await import("/ferry/sdk.js");
  globalThis.api = await sdk.connect();
})()`, nil)

	var methods []string
	eval(t, `sdk.services.map((s) => s.method + ":" + s.framing)`, &methods)
	if got := strings.Join(methods, ","); got != "chat:lines,lineFlood:lines,redisCache:raw" {
		t.Errorf("the live SDK's services: %s (the private one must not be there)", got)
	}

	t.Run("redis", func(t *testing.T) {
		var got string
		eval(t, `(async () => {
  const s = await api.redisCache();
  const w = s.writable.getWriter();
  await w.write("SET ferry-sdk browser\r\nGET ferry-sdk\r\n");
  const r = s.readable.getReader();
  let text = "";
  const dec = new TextDecoder();
  while (!text.includes("browser\r\n")) {
    const { value, done } = await r.read();
    if (done) break;
    text += dec.decode(value, { stream: true });
  }
  await s.close();
  return text;
})()`, &got)
		if got != "+OK\r\n$7\r\nbrowser\r\n" {
			t.Errorf("redis answered %q", got)
		}
	})

	t.Run("lines", func(t *testing.T) {
		var got struct {
			Echoed  []string
			Refused string
			Over    string
		}
		eval(t, `(async () => {
  const ch = await api.chat();
  const sent = ["", "a", "é".repeat(512), "crlf\r"];
  for (const m of sent) await ch.send(m);
  const echoed = [];
  for (let i = 0; i < sent.length; i++) echoed.push(await ch.receive());
  let refused = "";
  try { await ch.send("x".repeat(1025)); } catch (e) { refused = e.name + ": " + e.message; }
  // A line over max_message from the service ends the channel: a second
  // channel has the echo send one, written around the channel's framing.
  const ch2 = await api.chat();
  await ch2.socket.writable.getWriter().write(new TextEncoder().encode("y".repeat(1025) + "\n"));
  let over = "";
  try { await ch2.receive(); } catch (e) { over = e.name + ": " + e.message; }
  await ch.close();
  return { echoed, refused, over };
})()`, &got)
		// "crlf\r" goes out as "crlf\r\n" and comes back without the "\r".
		if want := []string{"", "a", strings.Repeat("é", 512), "crlf"}; fmt.Sprint(got.Echoed) != fmt.Sprint(want) {
			t.Errorf("echoed %q, want %q", got.Echoed, want)
		}
		if !strings.HasPrefix(got.Refused, "FerryError: ") || !strings.Contains(got.Refused, "over max_message (1024)") {
			t.Errorf("send over max_message: %q", got.Refused)
		}
		if !strings.HasPrefix(got.Over, "FerryError: ") || !strings.Contains(got.Over, "over max_message (1024)") {
			t.Errorf("receive over max_message: %q", got.Over)
		}
	})

	// heap is the page's JS heap in use after a full collection.
	heap := func(t *testing.T) float64 {
		t.Helper()
		if _, err := p.b.call(ctx, p.sessionID, "HeapProfiler.collectGarbage", nil); err != nil {
			t.Fatal(err)
		}
		res, err := p.b.call(ctx, p.sessionID, "Runtime.getHeapUsage", nil)
		if err != nil {
			t.Fatal(err)
		}
		var u struct{ UsedSize float64 }
		if err := json.Unmarshal(res, &u); err != nil || u.UsedSize <= 0 {
			t.Fatalf("Runtime.getHeapUsage: %s, %v", res, err)
		}
		return u.UsedSize
	}

	t.Run("backpressure", func(t *testing.T) {
		before := heap(t)
		eval(t, `(async () => {
  globalThis.flood = await api.lineFlood();
  globalThis.floodIt = flood.messages();
  for (let i = 0; i < 5; i++) await floodIt.next();
})()`, nil)
		var st floodStall
		select {
		case st = <-stalls:
		case <-ctx.Done():
			t.Fatal("the backend never blocked: the page read on although its consumer stopped")
		}
		if !st.stalled || st.written > wasmStallBound {
			t.Fatalf("the backend wrote %d bytes to a consumer that stopped after 5 messages; want a stall within %d", st.written, wasmStallBound)
		}
		grown := heap(t) - before
		t.Logf("a consumer that stopped stalled the backend after %.1f MiB; the page's JS heap grew by %.1f MiB", float64(st.written)/(1<<20), grown/(1<<20))
		if grown > 16<<20 {
			t.Errorf("the page's JS heap grew by %.1f MiB while its consumer stopped: messages() buffers what it was not asked for", grown/(1<<20))
		}
		var bad string
		eval(t, `(async () => {
  for (let i = 5; i < 5000; i++) {
    const { value } = await floodIt.next();
    const want = String(i).padStart(6, "0") + " " + "x".repeat(1016);
    if (value !== want) return "message " + i + ": " + String(value).slice(0, 20) + "... (" + String(value).length + " chars)";
  }
  await flood.close();
  return "";
})()`, &bad)
		if bad != "" {
			t.Errorf("after the stall, %s", bad)
		}
	})
	eval(t, `api.close()`, nil)
}
