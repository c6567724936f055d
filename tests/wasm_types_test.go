package tests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// typescriptPeer is tsc from the npm package typescript in
// tests/interop/node_modules; only its availability check and install
// hint are used (peer.require).
var typescriptPeer = &peer{
	name: "typescript",
	available: sync.OnceValue(func() error {
		if _, err := exec.LookPath("node"); err != nil {
			return err
		}
		_, err := os.Stat(filepath.Join(interopDir, "node_modules", "typescript", "bin", "tsc"))
		return err
	}),
	install: "install node, then run `npm ci` in tests/interop",
}

// TestWasmTypes checks the hand-written ferry.d.ts, as the gateway serves
// it, with tsc --strict against a program that uses every part of it
// (testdata/ferry_usage.ts), whose @ts-expect-error lines must stay errors.
func TestWasmTypes(t *testing.T) {
	t.Parallel()
	typescriptPeer.require(t)
	runTSC(t, "ferry_usage.ts", map[string]string{
		"../wasm/assets/ferry.d.ts": "ferry.d.ts",
		"testdata/ferry_usage.ts":   "ferry_usage.ts",
	})
}

// runTSC copies files (source path to name) into a fresh folder and runs
// tsc --strict on program there.
func runTSC(t *testing.T, program string, files map[string]string) {
	t.Helper()
	dir := t.TempDir()
	for src, dst := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tsc, err := filepath.Abs(filepath.Join(interopDir, "node_modules", "typescript", "bin", "tsc"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", tsc, "--strict", "--noEmit", "--noUnusedLocals",
		"--target", "es2022", "--module", "es2022", "--moduleResolution", "bundler",
		"--lib", "es2022,dom,dom.iterable", program)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tsc --strict: %v\n%s", err, out)
	}
}
