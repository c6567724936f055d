package gateway_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/gateway"
	"github.com/ferrygw/ferry/gateway/config"
	"github.com/ferrygw/ferry/gen"
	"github.com/ferrygw/ferry/wasm/assets"
)

func assetHandler(t *testing.T) http.Handler {
	t.Helper()
	srv, err := gateway.New(config.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return srv.Handler()
}

func get(h http.Handler, method, target string, header map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	r.Host = "127.0.0.1:8080" // not httptest's example.com, which a plaintext gateway refuses
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func contentHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// TestAssets checks what the gateway serves under /ferry/: types, bodies,
// gzip chosen by Accept-Encoding, strong ETags and 304, and cache headers
// (a year for a URL that names the current content hash, revalidation
// for a plain name).
func TestAssets(t *testing.T) {
	t.Parallel()
	h := assetHandler(t)
	wasm, err := gzip.NewReader(strings.NewReader(assets.ClientWasmGzip))
	if err != nil {
		t.Fatal(err)
	}
	plainWasm, err := io.ReadAll(wasm)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(plainWasm, []byte("\x00asm")) {
		t.Fatalf("client.wasm.gz does not hold a WebAssembly module")
	}
	// Each of the three representations of client.wasm has its own
	// ETag; an ETag of one does not validate another.
	brTag := get(h, "GET", "/ferry/client.wasm", map[string]string{"Accept-Encoding": "br"}).Result().Header.Get("ETag")
	gzTag := get(h, "GET", "/ferry/client.wasm", map[string]string{"Accept-Encoding": "gzip"}).Result().Header.Get("ETag")
	idTag := get(h, "GET", "/ferry/client.wasm", nil).Result().Header.Get("ETag")
	if brTag == gzTag || brTag == idTag || gzTag == idTag {
		t.Errorf("client.wasm ETags: br %s, gzip %s, identity %s: want three different ones", brTag, gzTag, idTag)
	}
	if brTag != `"`+contentHash(assets.ClientWasmBrotli)+`"` {
		t.Errorf("the brotli ETag %s is not the content hash of client.wasm.br", brTag)
	}
	if w := get(h, "GET", "/ferry/client.wasm", map[string]string{"Accept-Encoding": "gzip", "If-None-Match": brTag}); w.Code != 200 || w.Result().Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("gzip with the brotli ETag: %d %q, want the gzip body", w.Code, w.Result().Header.Get("Content-Encoding"))
	}

	cases := []struct {
		name, path, accept string
		wantType, wantBody string
		encoding           string // the Content-Encoding wanted
	}{
		{"wasm chromium", "/ferry/client.wasm", "gzip, deflate, br, zstd", "application/wasm", assets.ClientWasmBrotli, "br"},
		{"wasm gzip", "/ferry/client.wasm", "gzip, deflate", "application/wasm", assets.ClientWasmGzip, "gzip"},
		{"wasm x-gzip", "/ferry/client.wasm", "x-gzip", "application/wasm", assets.ClientWasmGzip, "gzip"},
		{"wasm star", "/ferry/client.wasm", "*", "application/wasm", assets.ClientWasmBrotli, "br"},
		{"wasm q", "/ferry/client.wasm", "br;q=1.0, gzip;q=0.5", "application/wasm", assets.ClientWasmBrotli, "br"},
		{"wasm q gzip", "/ferry/client.wasm", "br;q=0.4, gzip;q=0.5", "application/wasm", assets.ClientWasmGzip, "gzip"},
		{"wasm br refused", "/ferry/client.wasm", "br;q=0, *", "application/wasm", assets.ClientWasmGzip, "gzip"},
		{"wasm br only", "/ferry/client.wasm", "BR", "application/wasm", assets.ClientWasmBrotli, "br"},
		{"wasm identity", "/ferry/client.wasm", "", "application/wasm", string(plainWasm), ""},
		{"wasm gzip refused", "/ferry/client.wasm", "gzip;q=0, *;q=1", "application/wasm", assets.ClientWasmBrotli, "br"},
		{"wasm both refused", "/ferry/client.wasm", "gzip;q=0, br;q=0, *;q=1", "application/wasm", string(plainWasm), ""},
		{"wasm star refused", "/ferry/client.wasm", "zstd, *;q=0", "application/wasm", string(plainWasm), ""},
		{"ferry.js", "/ferry/ferry.js", "gzip, br", "text/javascript; charset=utf-8", assets.FerryJS, ""},
		{"ferry.d.ts", "/ferry/ferry.d.ts", "gzip", "text/plain; charset=utf-8", assets.FerryDTS, ""},
		{"wasm_exec.js", "/ferry/wasm_exec.js", "", "text/javascript; charset=utf-8", assets.WasmExecJS, ""},
	}
	etags := map[string]string{}
	for _, tc := range cases {
		w := get(h, "GET", tc.path, map[string]string{"Accept-Encoding": tc.accept})
		res := w.Result()
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != tc.wantType || w.Body.String() != tc.wantBody {
			t.Errorf("%s: %d %q, %d bytes; want 200 %q, %d bytes", tc.name, res.StatusCode, res.Header.Get("Content-Type"), w.Body.Len(), tc.wantType, len(tc.wantBody))
			continue
		}
		if ce := res.Header.Get("Content-Encoding"); ce != tc.encoding {
			t.Errorf("%s: Content-Encoding %q, want %q", tc.name, ce, tc.encoding)
		}
		if cl := res.Header.Get("Content-Length"); cl != strconv.Itoa(len(tc.wantBody)) {
			t.Errorf("%s: Content-Length %s, body %d", tc.name, cl, len(tc.wantBody))
		}
		etag := res.Header.Get("ETag")
		if !regexp.MustCompile(`^"[0-9a-f]{16}(-identity)?"$`).MatchString(etag) {
			t.Errorf("%s: ETag %q is not a strong content hash", tc.name, etag)
		}
		if prev, ok := etags[etag]; ok && prev != tc.wantBody {
			t.Errorf("%s: ETag %s names two different bodies", tc.name, etag)
		}
		for other, body := range etags {
			if body == tc.wantBody && other != etag {
				t.Errorf("%s: the same body has the ETags %s and %s", tc.name, other, etag)
			}
		}
		etags[etag] = tc.wantBody
		if cc := res.Header.Get("Cache-Control"); cc != "public, no-cache" {
			t.Errorf("%s: Cache-Control %q for a plain name", tc.name, cc)
		}
		if strings.HasPrefix(tc.path, "/ferry/client.wasm") && res.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("%s: Vary %q", tc.name, res.Header.Get("Vary"))
		}
		if res.Header.Get("Access-Control-Allow-Origin") != "*" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", tc.name, res.Header)
		}

		// The same ETag back: 304 without a body; W/ compares weakly.
		for _, inm := range []string{etag, `"x", W/` + etag} {
			w := get(h, "GET", tc.path, map[string]string{"Accept-Encoding": tc.accept, "If-None-Match": inm})
			if w.Code != http.StatusNotModified || w.Body.Len() != 0 || w.Result().Header.Get("ETag") != etag {
				t.Errorf("%s: If-None-Match %s: %d with %d bytes", tc.name, inm, w.Code, w.Body.Len())
			}
		}
		if w := get(h, "GET", tc.path, map[string]string{"Accept-Encoding": tc.accept, "If-None-Match": `"other"`}); w.Code != 200 {
			t.Errorf("%s: another ETag: %d", tc.name, w.Code)
		}
		if w := get(h, "HEAD", tc.path, map[string]string{"Accept-Encoding": tc.accept}); w.Code != 200 || w.Body.Len() != 0 || w.Result().Header.Get("Content-Length") == "" {
			t.Errorf("%s: HEAD: %d with %d bytes", tc.name, w.Code, w.Body.Len())
		}
	}

	// ferry.js asks for the others by content hash: those URLs are
	// immutable; a stale hash gets the current bytes, revalidated.
	m := regexp.MustCompile(`const versions = \{ "client.wasm": "([0-9a-f]{16})", "wasm_exec.js": "([0-9a-f]{16})" \};`).FindStringSubmatch(assets.FerryJS)
	if m == nil {
		t.Fatal("ferry.js holds no content hashes: was it built by scripts/build-wasm?")
	}
	if m[1] != contentHash(assets.ClientWasmGzip) || m[2] != contentHash(assets.WasmExecJS) {
		t.Errorf("ferry.js asks for client.wasm?v=%s and wasm_exec.js?v=%s; the content hashes are %s and %s",
			m[1], m[2], contentHash(assets.ClientWasmGzip), contentHash(assets.WasmExecJS))
	}
	for _, u := range []string{"/ferry/client.wasm?v=" + m[1], "/ferry/wasm_exec.js?v=" + m[2]} {
		if cc := get(h, "GET", u, map[string]string{"Accept-Encoding": "gzip"}).Result().Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("%s: Cache-Control %q", u, cc)
		}
	}
	if cc := get(h, "GET", "/ferry/client.wasm?v=0123456789abcdef", nil).Result().Header.Get("Cache-Control"); cc != "public, no-cache" {
		t.Errorf("a stale hash: Cache-Control %q", cc)
	}

	if w := get(h, "GET", "/ferry/nope.js", nil); w.Code != http.StatusNotFound {
		t.Errorf("/ferry/nope.js: %d", w.Code)
	}
	if w := get(h, "POST", "/ferry/ferry.js", nil); w.Code != http.StatusMethodNotAllowed || w.Result().Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d, Allow %q", w.Code, w.Result().Header.Get("Allow"))
	}
}

// TestDemoPage checks that the page at / runs the browser client against
// this gateway's tunnel path and starts with the public echo service.
func TestDemoPage(t *testing.T) {
	t.Parallel()
	w := get(assetHandler(t), "GET", "/", nil)
	body := w.Body.String()
	for _, want := range []string{
		`import * as sdk from "/ferry/sdk.js"`,
		`const sock = await api.echo();`,
		`const echoServices = new Set(["echo"]);`,
		`<option value="echo" selected>echo</option>`,
		`ferry connect ws://127.0.0.1:8080/tunnel echo`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if w.Code != 200 || w.Result().Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("%d %q", w.Code, w.Result().Header.Get("Content-Type"))
	}
}

// TestLiveSDK checks /ferry/sdk.js, sdk.d.ts and services.json: generated
// from the running config's public services only, with an ETag.
func TestLiveSDK(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("../gen/testdata/sdk.toml")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	for _, tc := range []struct {
		path, ctype string
		want        []string
	}{
		{"/ferry/sdk.js", "text/javascript; charset=utf-8", []string{gen.Header, `import * as ferry from "./ferry.js";`, "const base = import.meta.url;", "async chat() {", "echo() {"}},
		{"/ferry/sdk.d.ts", "text/plain; charset=utf-8", []string{gen.Header, "chat(): Promise<LinesChannel>;", "echo(): Promise<FerrySocket>;"}},
		{"/ferry/services.json", "application/json", []string{`"format": "ferry.services"`, `"name": "chat"`}},
	} {
		w := get(h, "GET", tc.path, nil)
		body := w.Body.String()
		if w.Code != 200 || w.Result().Header.Get("Content-Type") != tc.ctype {
			t.Errorf("%s: %d %q", tc.path, w.Code, w.Result().Header.Get("Content-Type"))
		}
		for _, want := range tc.want {
			if !strings.Contains(body, want) {
				t.Errorf("%s lacks %s", tc.path, want)
			}
		}
		// Private services stay out of what a script import can see.
		for _, private := range []string{"redis-cache", "frames_u32", "2fa"} {
			if strings.Contains(body, private) {
				t.Errorf("%s names the private service %s", tc.path, private)
			}
		}
		etag := w.Result().Header.Get("ETag")
		if etag == "" || w.Result().Header.Get("Cache-Control") != "public, no-cache" {
			t.Errorf("%s: ETag %q, Cache-Control %q", tc.path, etag, w.Result().Header.Get("Cache-Control"))
		}
		if w := get(h, "GET", tc.path, map[string]string{"If-None-Match": etag}); w.Code != http.StatusNotModified {
			t.Errorf("%s with its ETag: %d", tc.path, w.Code)
		}
	}
	cat, err := gen.ParseCatalog(get(h, "GET", "/ferry/services.json", nil).Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Services) != 2 || cat.Services[0].Name != "chat" || cat.Services[0].MaxMessage != 65536 || cat.Services[1].Name != "echo" {
		t.Errorf("catalog %+v", cat.Services)
	}
}
