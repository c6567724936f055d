//go:build linux

package tests

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/gateway"
	"github.com/ferrygw/ferry/gateway/config"
)

// refusalPage opens WebSockets to the gateway the way a page would and
// reports, for each, the close code and reason the browser saw.
const refusalPage = `<!doctype html><meta charset="utf-8"><title>refusals</title><script>
const gw = %q;
const cases = [
  {name: "bad token", protos: ["ferry.v1", "ferry.token.not-a-valid-token"]},
  {name: "no token", protos: ["ferry.v1"]},
  {name: "good token", protos: ["ferry.v1", "ferry.token.%s"]},
  {name: "same token again", protos: ["ferry.v1", "ferry.token.%s"]},
];
function attempt(c) {
  return new Promise(resolve => {
    const ws = new WebSocket(gw, c.protos);
    let opened = false;
    ws.onopen = () => { opened = true; };
    ws.onclose = e => resolve({name: c.name, opened, protocol: ws.protocol, code: e.code, reason: e.reason});
    if (c.name === "good token") {
      // Keep this one open while the next is refused for the token limit.
      ws.onopen = () => { opened = true; c.keep = ws; resolve({name: c.name, opened, protocol: ws.protocol, code: 0, reason: ""}); };
    }
  });
}
(async () => {
  const out = [];
  for (const c of cases) out.push(await attempt(c));
  await fetch("/result", {method: "POST", body: JSON.stringify(out)});
})();
</script>`

// TestBrowserRefusals: a real page from an allowed origin reads the
// gateway's 4401 and 4429 closes and their reasons, and sees that only
// ferry.v1 was selected when it was let in.
func TestBrowserRefusals(t *testing.T) {
	t.Parallel()
	chromiumPeer.require(t)
	const token = "browser-refusal-test-token-0123456789abcdef"
	pageLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pageOrigin := "http://" + pageLn.Addr().String()
	cfg, err := config.Parse("refusal.toml", []byte(fmt.Sprintf(`
[server]
allowed_origins = [%q]
[limits]
max_sessions_per_token = 1
[services.db]
backend = "127.0.0.1:1"
[[tokens]]
name = "page"
sha256 = "%x"
services = ["db"]
`, pageOrigin, sha256.Sum256([]byte(token)))))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	gwLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(gwLn)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()

	results := make(chan []byte, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, refusalPage, "ws://"+gwLn.Addr().String()+"/tunnel", token, token)
	})
	mux.HandleFunc("/result", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case results <- b:
		default:
		}
	})
	page := &http.Server{Handler: mux}
	go page.Serve(pageLn)
	defer page.Close()

	startChromium(t, pageOrigin+"/")
	var got []struct {
		Name, Protocol, Reason string
		Opened                 bool
		Code                   int
	}
	select {
	case b := <-results:
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("page result %q: %v", b, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the page did not report")
	}
	want := map[string]struct {
		code   int
		reason string
	}{
		"bad token":        {4401, "not valid"},
		"no token":         {4401, "token is required"},
		"good token":       {0, ""},
		"same token again": {4429, "maximum per token"},
	}
	for _, g := range got {
		w := want[g.Name]
		if g.Code != w.code || !strings.Contains(g.Reason, w.reason) || g.Protocol != "ferry.v1" {
			t.Errorf("%s: the page saw code %d reason %q protocol %q; want %d mentioning %q, protocol ferry.v1", g.Name, g.Code, g.Reason, g.Protocol, w.code, w.reason)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d results: %+v", len(got), got)
	}
}
