//go:build linux

package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/testnet"
)

// TestWasmCloseResets: a page that closes a socket whose service is still
// sending (a download it gave up on) ends the gateway's connection to the
// service once the close's drain is over (the browser client resets the
// stream), rather than leaving it blocked on the stream's full window for
// as long as the page's tunnel lives.
func TestWasmCloseResets(t *testing.T) {
	t.Parallel()
	addr, ended := testnet.Firehose(t)
	b := startCDPBrowser(t)
	g := startWasmGateway(t, wasmEchoConfig+fmt.Sprintf("[services.firehose]\nbackend = %q\npublic = true\n", addr))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	eval := suitePage(ctx, t, b, g.url("/healthz"), `{}`, nil)
	var read int
	eval(`(async () => {
  const ferry = await import("/ferry/ferry.js");
  const gw = await ferry.connect();
  globalThis.firehoseGateway = gw; // stays connected after the close
  const s = await gw.dial("firehose");
  const r = s.readable.getReader();
  let n = 0;
  while (n < 1 << 20) {
    const { value, done } = await r.read();
    if (done) throw new Error("the firehose ended after " + n + " bytes");
    n += value.length;
  }
  r.releaseLock();
  s.close().catch(() => {});
  return n;
})()`, &read)
	start := time.Now()
	select {
	case err := <-ended:
		t.Logf("read %d bytes; the service's connection ended %v after the page's close(): %v", read, time.Since(start), err)
	case <-time.After(8 * time.Second):
		t.Fatalf("read %d bytes; the service still sends 8 s after the page closed the socket (its drain lasts 5 s)", read)
	}
}
