package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
)

// assetsDir is the committed build, relative to this package.
const assetsDir = "../assets"

// TestAssetsReproducible builds the browser client afresh and compares
// every file with the committed wasm/assets: the build is reproducible,
// so any difference means the sources (wasm/, client/, tunnel/, ...) or
// the toolchain changed without scripts/build-wasm being run.
func TestAssetsReproducible(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	if err := run(out); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"client.wasm.gz", "client.wasm.br", "ferry.js", "ferry.d.ts", "wasm_exec.js"} {
		fresh, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		committed, err := os.ReadFile(filepath.Join(assetsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fresh, committed) {
			t.Errorf("wasm/assets/%s (%d bytes, SHA-256 %x) differs from a fresh build with %s (%d bytes, %x): run scripts/build-wasm and commit the result",
				name, len(committed), sha256.Sum256(committed), runtime.Version(), len(fresh), sha256.Sum256(fresh))
		}
	}
}

// TestWasmExecIsGos checks that wasm/assets/wasm_exec.js is a verbatim
// copy of this toolchain's $(go env GOROOT)/lib/wasm/wasm_exec.js, which
// client.wasm needs (its imports change between Go versions).
func TestWasmExecIsGos(t *testing.T) {
	t.Parallel()
	goroot, err := goEnv("GOROOT")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(goroot, "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(assetsDir, "wasm_exec.js"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("wasm/assets/wasm_exec.js is not %s/lib/wasm/wasm_exec.js of %s: run scripts/build-wasm", goroot, runtime.Version())
	}
}

// TestWasmSize fails when the committed client.wasm.gz or client.wasm.br
// weighs more than its limit (MaxGzipSize, MaxBrotliSize): what a first
// visit of a page downloads, without brotli and with it.
func TestWasmSize(t *testing.T) {
	t.Parallel()
	var sizes [2]int64
	for i, name := range []string{"client.wasm.gz", "client.wasm.br"} {
		fi, err := os.Stat(filepath.Join(assetsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		sizes[i] = fi.Size()
	}
	if err := checkSizes(sizes[0], sizes[1]); err != nil {
		t.Error(err)
	}
	t.Logf("client.wasm.gz: %d bytes (limit %d); client.wasm.br: %d bytes (limit %d)", sizes[0], MaxGzipSize, sizes[1], MaxBrotliSize)
}

// TestGzipDeterministic: the header holds no name and no time.
func TestGzipDeterministic(t *testing.T) {
	a, err := Gzip([]byte("ferry"))
	if err != nil {
		t.Fatal(err)
	}
	// ID1 ID2 CM FLG MTIME(4) XFL OS: no flags, no time.
	if a[3] != 0 || !bytes.Equal(a[4:8], []byte{0, 0, 0, 0}) {
		t.Errorf("gzip header % x has flags or a time", a[:10])
	}
}

// committedWasm returns the committed client.wasm, decompressed.
func committedWasm(t *testing.T) []byte {
	t.Helper()
	gz, err := os.ReadFile(filepath.Join(assetsDir, "client.wasm.gz"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	wasm, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// TestBrotliRoundTrip: client.wasm.br decodes to the module that
// client.wasm.gz holds.
func TestBrotliRoundTrip(t *testing.T) {
	t.Parallel()
	want := committedWasm(t)
	br, err := os.ReadFile(filepath.Join(assetsDir, "client.wasm.br"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(brotli.NewReader(bytes.NewReader(br)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || !bytes.HasPrefix(got, []byte("\x00asm")) {
		t.Errorf("client.wasm.br decodes to %d bytes, client.wasm.gz to %d: not the same module", len(got), len(want))
	}
}

// TestNoHeavyDeps checks that the js/wasm build links none of what the
// browser already does: net/http, TLS, flate (package compress and
// klauspost/compress), with which client.wasm would weigh twice as much;
// and none of fmt, log, net, os and hashicorp/yamux (tunnel/ymux stands
// in for it), which cost about 190 KB of its gzip'ed weight.
func TestNoHeavyDeps(t *testing.T) {
	t.Parallel()
	root, err := goEnv("GOMOD")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-deps", "./wasm")
	cmd.Dir = filepath.Dir(root)
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm", "GOFLAGS=")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := strings.Fields(string(out))
	if !slices.Contains(pkgs, "github.com/ferrygw/ferry/client") {
		t.Fatalf("go list -deps ./wasm does not list package client:\n%s", out)
	}
	for _, pkg := range pkgs {
		if pkg == "net/http" || strings.HasPrefix(pkg, "net/http/") || strings.HasPrefix(pkg, "crypto/tls") ||
			pkg == "compress/flate" || strings.HasPrefix(pkg, "github.com/klauspost/compress") || pkg == "github.com/ferrygw/ferry/compress" ||
			pkg == "fmt" || pkg == "log" || pkg == "net" || pkg == "os" || pkg == "github.com/hashicorp/yamux" {
			t.Errorf("the js/wasm build links %s", pkg)
		}
	}
}

// TestAnalyze reads the committed client.wasm: its functions (unnamed,
// since the build strips the name section) and sections add up.
func TestAnalyze(t *testing.T) {
	t.Parallel()
	m, err := analyze(committedWasm(t))
	if err != nil {
		t.Fatal(err)
	}
	sum := 0
	for _, f := range m.funcs {
		sum += f.size
	}
	if len(m.funcs) < 1000 || sum >= m.code || m.code+m.data >= m.total || !strings.HasPrefix(m.funcs[0].name, "func[") {
		t.Errorf("client.wasm: %d functions of %d bytes in a code section of %d, data %d, total %d", len(m.funcs), sum, m.code, m.data, m.total)
	}
	var out strings.Builder
	if err := writeSizes(&out, m, 3); err != nil || !strings.Contains(out.String(), "largest functions") {
		t.Errorf("writeSizes: %v\n%s", err, out.String())
	}
	if _, err := analyze([]byte("\x00asm\x01\x00\x00\x00\x0a\x05\x01")); err == nil {
		t.Error("a truncated module analyzed without an error")
	}
}

func TestSymbolPackage(t *testing.T) {
	for sym, want := range map[string]string{
		"runtime.initMetrics":                            "runtime",
		"fmt.__pp_.printValue":                           "fmt",
		"github.com_ferrygw_ferry_client.openStream":     "github.com/ferrygw/ferry/client",
		"github.com_hashicorp_yamux.__Session_.recvLoop": "github.com/hashicorp/yamux",
		"internal_runtime_maps.__Iter_.Next":             "internal/runtime/maps",
		"vendor_golang.org_x_net_dns_dnsmessage.init":    "vendor/golang.org/x/net/dns/dnsmessage",
		"runtime.morestack_noctxt":                       "runtime",
		"type_.eq.net.OpError":                           "type:",
		"main.dialWebSocket":                             "main",
	} {
		if got := symbolPackage(sym); got != want {
			t.Errorf("symbolPackage(%q) = %q, want %q", sym, got, want)
		}
	}
}
