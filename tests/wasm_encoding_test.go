//go:build linux

package tests

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// wasmResponse is what the page's network saw of the client.wasm it
// loaded: its Content-Encoding and the bytes that crossed the wire.
type wasmResponse struct {
	url, encoding, vary string
	wireBytes           float64
}

// loadDemoWatchingWasm opens the demo page at url in a new tab with the
// HTTP cache off, after setup (given the tab's session ID) has run, waits
// until its hello is echoed, and returns how client.wasm came.
func loadDemoWatchingWasm(ctx context.Context, t *testing.T, b *cdpBrowser, url string, setup func(sessionID string) error) wasmResponse {
	t.Helper()
	p, err := b.openPage(ctx, "about:blank")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("page console:\n%s", p.console)
		}
		// Leave the page, so its tunnel ends before the gateway stops.
		_ = p.navigate(ctx, "about:blank")
	}()
	for _, c := range []struct {
		method string
		params map[string]any
	}{
		{"Network.enable", map[string]any{}},
		{"Network.setCacheDisabled", map[string]any{"cacheDisabled": true}},
	} {
		if _, err := b.call(ctx, p.sessionID, c.method, c.params); err != nil {
			t.Fatal(err)
		}
	}
	if setup != nil {
		if err := setup(p.sessionID); err != nil {
			t.Fatal(err)
		}
	}
	responses, unsubResponses := b.subscribe(p.sessionID, "Network.responseReceived")
	defer unsubResponses()
	finished, unsubFinished := b.subscribe(p.sessionID, "Network.loadingFinished")
	defer unsubFinished()
	if err := p.navigate(ctx, url); err != nil {
		t.Fatal(err)
	}
	if err := p.eval(ctx, wasmSuiteJS, nil); err != nil {
		t.Fatal(err)
	}
	var demo struct{ Log, State string }
	if err := p.eval(ctx, `suite.demoEcho()`, &demo); err != nil {
		t.Fatal(err)
	}
	if strings.Count(demo.Log, "hello from Chrom") != 2 || !strings.HasPrefix(demo.State, "connected") {
		t.Errorf("the demo page shows the tunnel %q and the log:\n%s\nwant its hello sent and echoed", demo.State, demo.Log)
	}
	// The module is compiled, so its response has come and finished (the
	// events were sent before the answer to the evaluation).
	var got wasmResponse
	var requestID string
	for requestID == "" {
		select {
		case m, ok := <-responses:
			if !ok {
				t.Fatal(b.err())
			}
			var ev struct {
				RequestID string
				Response  struct {
					URL     string
					Headers map[string]string
				}
			}
			if err := json.Unmarshal(m.Params, &ev); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(ev.Response.URL, "/ferry/client.wasm") {
				continue
			}
			requestID, got.url = ev.RequestID, ev.Response.URL
			for k, v := range ev.Response.Headers {
				switch strings.ToLower(k) {
				case "content-encoding":
					got.encoding = v
				case "vary":
					got.vary = v
				}
			}
		case <-ctx.Done():
			t.Fatal("the page compiled client.wasm, but its network reported no response for it")
		}
	}
	for {
		select {
		case m, ok := <-finished:
			if !ok {
				t.Fatal(b.err())
			}
			var ev struct {
				RequestID         string
				EncodedDataLength float64
			}
			if err := json.Unmarshal(m.Params, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.RequestID == requestID {
				got.wireBytes = ev.EncodedDataLength
				return got
			}
		case <-ctx.Done():
			t.Fatal("client.wasm's loading never finished")
		}
	}
}

// localhostURL is the URL of path on the gateway by the name localhost,
// on which Chromium accepts br (as on secure origins), unlike 127.0.0.1.
func (g *wasmGateway) localhostURL(path string) string {
	return "http://localhost:" + g.addr[strings.LastIndexByte(g.addr, ':')+1:] + path
}

// TestWasmEncoding loads the demo page in headless Chromium: client.wasm
// comes brotli'ed (Content-Encoding: br, Vary: Accept-Encoding) and the
// page works with it; a browser that does not accept br gets it gzip'ed,
// and works too.
func TestWasmEncoding(t *testing.T) {
	t.Parallel()
	b := startCDPBrowser(t)
	g := startWasmGateway(t, wasmEchoConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := g.localhostURL("/")

	br := loadDemoWatchingWasm(ctx, t, b, url, nil)
	if br.encoding != "br" || br.vary != "Accept-Encoding" {
		t.Errorf("%s came with Content-Encoding %q, Vary %q; want br, Accept-Encoding", br.url, br.encoding, br.vary)
	}
	gz := loadDemoWatchingWasm(ctx, t, b, url, func(sessionID string) error {
		_, err := b.call(ctx, sessionID, "Network.setExtraHTTPHeaders", map[string]any{"headers": map[string]string{"Accept-Encoding": "gzip, deflate"}})
		return err
	})
	if gz.encoding != "gzip" {
		t.Errorf("without br, %s came with Content-Encoding %q; want gzip", gz.url, gz.encoding)
	}
	t.Logf("client.wasm over the wire: %.0f bytes with brotli, %.0f with gzip (%.2f×)", br.wireBytes, gz.wireBytes, br.wireBytes/gz.wireBytes)
}
