package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExposeArgs: ferry expose checks its arguments and a client config's
// [expose] table before it connects.
func TestExposeArgs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("gateway = \"ws://127.0.0.1:1/tunnel\"\n[expose]\nlaptop = \"127.0.0.1:5432\"\n"), 0o600)
	none := filepath.Join(dir, "none.toml")
	os.WriteFile(none, []byte("gateway = \"ws://127.0.0.1:1/tunnel\"\n[forward]\n\"6379\" = \"redis\"\n"), 0o600)
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"expose", "ws://127.0.0.1:1/tunnel"}, 2, "missing SERVICE=LOCALADDR"},
		{[]string{"expose", "ws://127.0.0.1:1/tunnel", "laptop"}, 2, "want SERVICE=LOCALADDR"},
		{[]string{"expose", "ws://127.0.0.1:1/tunnel", "Laptop=5432"}, 2, "is not a service name"},
		{[]string{"expose", "ws://127.0.0.1:1/tunnel", "laptop=70000"}, 2, "outside 1-65535"},
		{[]string{"expose", "ws://127.0.0.1:1/tunnel", "laptop=1", "laptop=2"}, 2, "laptop is given twice"},
		{[]string{"expose", "-config", none, "-check"}, 2, "has no [expose] entries"},
		{[]string{"expose", "-config", good, "-check"}, 0, "would expose laptop -> 127.0.0.1:5432"},
	} {
		var out, errb bytes.Buffer
		code := run(tt.args, &out, &errb)
		if code != tt.code || !strings.Contains(out.String()+errb.String(), tt.want) {
			t.Errorf("%v: exit %d, output %q%q; want %d and %q", tt.args, code, out.String(), errb.String(), tt.code, tt.want)
		}
	}
}
