package gateway

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/ferrygw/ferry/gateway/config"
	"github.com/ferrygw/ferry/gen"
	"github.com/ferrygw/ferry/wasm/assets"
)

// assetPrefix is where the browser client is served.
const assetPrefix = "/ferry/"

// immutable is the Cache-Control of an asset asked for by its current
// content hash (?v=): that URL always names these bytes.
const immutable = "public, max-age=31536000, immutable"

// revalidate is the Cache-Control of an asset asked for by its plain name:
// the name stays when a new gateway serves new bytes, and ferry.js must
// match client.wasm, so a browser asks each time and mostly gets 304.
const revalidate = "public, no-cache"

// asset is one file of the browser client.
type asset struct {
	contentType string
	// data is the file, gzip'ed when gzipped is set.
	data    string
	gzipped bool
	// br is the file compressed with brotli, or "": only a gzipped asset
	// has it.
	br        string
	brVersion string // the first 16 hex digits of SHA-256(br)
	size      int64  // the decompressed size
	version   string // the first 16 hex digits of SHA-256(data), as in ferry.js
}

var browserAssets = map[string]*asset{
	"client.wasm":  newAsset("application/wasm", assets.ClientWasmGzip, true).withBrotli(assets.ClientWasmBrotli),
	"ferry.js":     newAsset("text/javascript; charset=utf-8", assets.FerryJS, false),
	"ferry.d.ts":   newAsset("text/plain; charset=utf-8", assets.FerryDTS, false),
	"wasm_exec.js": newAsset("text/javascript; charset=utf-8", assets.WasmExecJS, false),
}

func newAsset(contentType, data string, gzipped bool) *asset {
	a := &asset{contentType: contentType, data: data, gzipped: gzipped, size: int64(len(data)), version: contentVersion(data)}
	if gzipped && len(data) >= 4 {
		// The gzip trailer ends with the input size modulo 2^32.
		a.size = int64(binary.LittleEndian.Uint32([]byte(data[len(data)-4:])))
	}
	return a
}

// withBrotli adds the brotli copy of a gzipped asset (the same bytes once
// decompressed, as wasm/build builds and tests them).
func (a *asset) withBrotli(br string) *asset {
	a.br, a.brVersion = br, contentVersion(br)
	return a
}

func contentVersion(data string) string {
	sum := sha256.Sum256([]byte(data))
	return hex.EncodeToString(sum[:8])
}

// encoding is the Content-Encoding of a response: the asset as stored
// (gzip'ed or not), brotli'ed, or decompressed.
type encoding int

const (
	encStored encoding = iota
	encBrotli
	encIdentity
)

// encodingFor picks the representation for a request's Accept-Encoding:
// for a gzipped asset, brotli or gzip, whichever has the higher q-value
// (brotli on a tie: it is the smaller), or the decompressed bytes when the
// request accepts neither.
func (a *asset) encodingFor(acceptEncoding []string) encoding {
	if !a.gzipped {
		return encStored
	}
	qbr, qgz := acceptQ(acceptEncoding, "br"), acceptQ(acceptEncoding, "gzip")
	switch {
	case a.br != "" && qbr > 0 && qbr >= qgz:
		return encBrotli
	case qgz > 0:
		return encStored
	}
	return encIdentity
}

// etag is the strong validator of the representation sent: a gzip'ed
// body, a brotli'ed one and the same bytes decompressed are different
// representations, each with its own tag.
func (a *asset) etag(enc encoding) string {
	switch enc {
	case encBrotli:
		return `"` + a.brVersion + `"`
	case encIdentity:
		return `"` + a.version + `-identity"`
	}
	return `"` + a.version + `"`
}

// serveAsset serves the browser client under /ferry/: ferry.js,
// ferry.d.ts, wasm_exec.js and client.wasm (brotli'ed when the browser
// accepts br, as Chromium does on secure origins and localhost, else
// gzip'ed when it accepts gzip, as every browser does; decompressed on the
// fly otherwise; Vary: Accept-Encoding).
// Every answer has a strong ETag and If-None-Match gets 304. A URL whose
// ?v= is the file's current content hash, as ferry.js asks for
// client.wasm and wasm_exec.js, is cached for a year; a plain name is
// revalidated on each use. The files are public, so any origin may load
// them (a page of an origin listed in allowed_origins loads ferry.js
// from the gateway as a CORS module script).
//
// The live SDK (sdk.js, sdk.d.ts, services.json: liveSDK) is served the
// same way, from the running config.
func (s *Server) serveAsset(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, assetPrefix)
	a := browserAssets[name]
	if a == nil {
		a = s.sdk.Load().files[name]
	}
	if a == nil {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	enc := a.encodingFor(r.Header.Values("Accept-Encoding"))
	h := w.Header()
	h.Set("ETag", a.etag(enc))
	if r.URL.Query().Get("v") == a.version {
		h.Set("Cache-Control", immutable)
	} else {
		h.Set("Cache-Control", revalidate)
	}
	if a.gzipped {
		h.Set("Vary", "Accept-Encoding")
	}
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("X-Content-Type-Options", "nosniff")
	if etagMatch(r.Header.Values("If-None-Match"), a.etag(enc)) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", a.contentType)
	body, size := a.data, int64(len(a.data))
	switch {
	case enc == encBrotli:
		body, size = a.br, int64(len(a.br))
		h.Set("Content-Encoding", "br")
	case enc == encIdentity:
		size = a.size
	case a.gzipped:
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	// A client that stops reading is cut off; see boundWrite.
	boundWrite(w, size)
	w.WriteHeader(http.StatusOK)
	if enc != encIdentity {
		_, _ = io.WriteString(w, body)
		return
	}
	zr, err := gzip.NewReader(strings.NewReader(a.data))
	if err != nil {
		return // not reached: the embedded file is checked by tests
	}
	_, _ = io.Copy(w, zr)
}

// acceptQ returns the q-value that Accept-Encoding values give coding
// ("gzip" also matches x-gzip): its own, else that of *, else 0 (a coding
// not listed is not accepted; an encoding without a header is identity).
func acceptQ(values []string, coding string) float64 {
	named, star := -1.0, -1.0
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			listed, params, _ := strings.Cut(part, ";")
			name := strings.ToLower(strings.TrimSpace(listed))
			q := 1.0
			for _, p := range strings.Split(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					if err != nil {
						f = 0
					}
					q = f
				}
			}
			switch {
			case name == coding || coding == "gzip" && name == "x-gzip":
				named = max(named, q)
			case name == "*":
				star = max(star, q)
			}
		}
	}
	if named >= 0 {
		return named
	}
	return max(star, 0)
}

// etagMatch reports whether an If-None-Match header names etag (weak
// comparison, as RFC 9110 asks for If-None-Match), or is *.
func etagMatch(values []string, etag string) bool {
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == etag {
				return true
			}
		}
	}
	return false
}

// liveSDK is the SDK generated from the running config, for its public
// services only (a script import carries no credential): sdk.js (which
// imports ./ferry.js and finds the tunnel from its own URL), sdk.d.ts and
// services.json, the JSON catalog. Private services belong in an SDK
// generated at build time with ferry gen.
type liveSDK struct{ files map[string]*asset }

// liveNames maps the generator's file names to the served ones.
var liveNames = map[string]string{gen.TSModule: "sdk.js", gen.TSTypes: "sdk.d.ts", gen.JSONFile: "services.json"}

func newLiveSDK(cfg *config.Config) (*liveSDK, error) {
	cat, err := gen.FromConfig(cfg, true)
	if err != nil {
		return nil, err
	}
	l := &liveSDK{files: map[string]*asset{}}
	for _, lang := range []string{"ts", "json"} {
		files, err := gen.Generate(cat, gen.Options{Lang: lang, Live: true})
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			name, ok := liveNames[f.Name]
			if !ok {
				continue // ferry.d.ts: served from the browser client's own
			}
			ct := "text/javascript; charset=utf-8"
			switch {
			case strings.HasSuffix(name, ".json"):
				ct = "application/json"
			case strings.HasSuffix(name, ".d.ts"):
				ct = "text/plain; charset=utf-8"
			}
			l.files[name] = newAsset(ct, string(f.Data), false)
		}
	}
	return l, nil
}
