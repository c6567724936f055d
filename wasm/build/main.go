// Command build builds Ferry's browser client into wasm/assets (run it as
// scripts/build-wasm): client.wasm for js/wasm, reproducibly (-trimpath
// -buildvcs=false -ldflags='-s -w', with GOFLAGS and GOWASM cleared), then
// compressed twice: client.wasm.gz, gzip'ed with a header that holds no
// name and no time, for every browser, and client.wasm.br, brotli at
// quality 11, for browsers that accept br (Chromium does on secure origins
// and localhost); ferry.js, with the content hashes of client.wasm.gz and
// wasm_exec.js written into it so that their URLs change when they do;
// ferry.d.ts as is; and Go's own wasm_exec.js, copied verbatim from
// $(go env GOROOT)/lib/wasm.
//
// The same toolchain and sources give the same bytes, which the tests
// check by building again and comparing.
//
// With -sizes it writes nothing: it builds client.wasm with its symbol
// names kept and prints where its bytes go, by package and by function,
// and how much its stripped build weighs compressed.
//
// Usage: go run ./wasm/build [-out DIR] [-sizes]
package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/andybalholm/brotli"
)

// MaxGzipSize and MaxBrotliSize are the most client.wasm.gz and
// client.wasm.br may weigh: what a first visit downloads without brotli
// and with it, issue 15's targets. With Go 1.26.8 they weigh about 830 KB and
// 620 KB, since the browser build links no fmt, log, net or
// hashicorp/yamux (tunnel/ymux speaks yamux's wire for it): those cost
// about 190 KB of gzip. go run ./wasm/build -sizes shows where the bytes
// go; the runtime and syscall/js alone are about 440 KB of brotli.
const (
	MaxGzipSize   = 900_000
	MaxBrotliSize = 640_000
)

// versionsLine is the line of ferry.js that gets the content hashes.
const versionsLine = `const versions = { "client.wasm": "", "wasm_exec.js": "" };`

func main() {
	out := flag.String("out", "", "write the assets to `DIR` (default: wasm/assets of the module)")
	sizes := flag.Bool("sizes", false, "print where the bytes of client.wasm go, and write nothing")
	flag.Parse()
	run := run
	if *sizes {
		run = func(string) error { return printSizes(os.Stdout) }
	}
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "build-wasm:", err)
		os.Exit(1)
	}
}

// moduleRoot is the folder of Ferry's go.mod.
func moduleRoot() (string, error) {
	gomod, err := goEnv("GOMOD")
	if err != nil {
		return "", err
	}
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run it inside Ferry's module")
	}
	return filepath.Dir(gomod), nil
}

// buildWasm builds client.wasm from the module at root into a temporary
// file and returns its bytes, with ldflags (-s -w for the assets; -w
// keeps the names that -sizes reports).
func buildWasm(root, ldflags string) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "ferry-build-wasm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	wasmFile := filepath.Join(tmp, "client.wasm")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags="+ldflags, "-o", wasmFile, "./wasm")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm", "GOFLAGS=", "GOWASM=", "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build: %w", err)
	}
	return os.ReadFile(wasmFile)
}

// buildCompressed builds the stripped client.wasm of the assets and
// returns it with its gzip and brotli copies.
func buildCompressed(root string) (wasm, gz, br []byte, err error) {
	if wasm, err = buildWasm(root, "-s -w"); err != nil {
		return nil, nil, nil, err
	}
	if gz, err = Gzip(wasm); err != nil {
		return nil, nil, nil, err
	}
	if br, err = Brotli(wasm); err != nil {
		return nil, nil, nil, err
	}
	return wasm, gz, br, nil
}

// printSizes prints where the bytes of client.wasm go, and its compressed
// sizes.
func printSizes(w io.Writer) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	named, err := buildWasm(root, "-w")
	if err != nil {
		return err
	}
	m, err := analyze(named)
	if err != nil {
		return err
	}
	wasm, gz, br, err := buildCompressed(root)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "stripped client.wasm %d bytes, gzip %d (limit %d), brotli %d (limit %d)\n", len(wasm), len(gz), MaxGzipSize, len(br), MaxBrotliSize)
	fmt.Fprintf(w, "with names (the name section is %d bytes more):\n\n", len(named)-len(wasm))
	return writeSizes(w, m, 40)
}

func run(out string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if out == "" {
		out = filepath.Join(root, "wasm", "assets")
	}
	goroot, err := goEnv("GOROOT")
	if err != nil {
		return err
	}
	wasm, gz, br, err := buildCompressed(root)
	if err != nil {
		return err
	}
	wasmExec, err := os.ReadFile(filepath.Join(goroot, "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		return err
	}
	ferryJS, err := os.ReadFile(filepath.Join(root, "wasm", "ferry.js"))
	if err != nil {
		return err
	}
	versions := fmt.Sprintf(`const versions = { "client.wasm": %q, "wasm_exec.js": %q };`, Version(gz), Version(wasmExec))
	if bytes.Count(ferryJS, []byte(versionsLine)) != 1 {
		return fmt.Errorf("wasm/ferry.js must hold the line %s once", versionsLine)
	}
	ferryJS = bytes.Replace(ferryJS, []byte(versionsLine), []byte(versions), 1)
	ferryJS = append([]byte("// Code generated by scripts/build-wasm from wasm/ferry.js; DO NOT EDIT.\n\n"), ferryJS...)
	dts, err := os.ReadFile(filepath.Join(root, "wasm", "ferry.d.ts"))
	if err != nil {
		return err
	}
	dts = append([]byte("// Code generated by scripts/build-wasm from wasm/ferry.d.ts; DO NOT EDIT.\n\n"), dts...)
	files := []struct {
		name string
		data []byte
	}{
		{"client.wasm.gz", gz},
		{"client.wasm.br", br},
		{"ferry.js", ferryJS},
		{"ferry.d.ts", dts},
		{"wasm_exec.js", wasmExec},
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(out, f.name), f.data, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "build-wasm: %s: client.wasm %d bytes, client.wasm.gz %d bytes (limit %d), client.wasm.br %d bytes (limit %d)\n",
		out, len(wasm), len(gz), MaxGzipSize, len(br), MaxBrotliSize)
	return checkSizes(int64(len(gz)), int64(len(br)))
}

// checkSizes fails when a compressed client.wasm weighs more than its
// limit.
func checkSizes(gz, br int64) error {
	var errs []error
	if gz > MaxGzipSize {
		errs = append(errs, fmt.Errorf("client.wasm.gz is %d bytes, over the limit of %d", gz, MaxGzipSize))
	}
	if br > MaxBrotliSize {
		errs = append(errs, fmt.Errorf("client.wasm.br is %d bytes, over the limit of %d", br, MaxBrotliSize))
	}
	return errors.Join(errs...)
}

// Gzip compresses b at the best level with a header that holds no name,
// comment or time, so the same input always gives the same output.
func Gzip(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Brotli compresses b at quality 11 with the largest standard window
// (2^24 bytes; the encoder shrinks it to fit a smaller input). The encoder
// is pure Go and single-threaded, so the same input always gives the same
// output; browsers decode any window up to 2^24.
func Brotli(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	bw := brotli.NewWriterOptions(&buf, brotli.WriterOptions{Quality: brotli.BestCompression, LGWin: 24})
	if _, err := bw.Write(b); err != nil {
		return nil, err
	}
	if err := bw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Version is the content hash that versions an asset's URL: the first 16
// hex digits of its SHA-256 (the gateway computes the same).
func Version(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

func goEnv(name string) (string, error) {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		return "", fmt.Errorf("go env %s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}
