//go:build linux

package tests

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var systemdAnalyzePeer = &peer{
	name: "systemd-analyze",
	available: sync.OnceValue(func() error {
		_, err := exec.LookPath("systemd-analyze")
		return err
	}),
	install: "install it with `apt-get install systemd`",
}

// TestDeploySystemdUnit checks deploy/ferry.service with `systemd-analyze
// verify`, which needs the programs it runs to exist: the copy it checks
// names the ferry binary the tests build instead of /usr/local/bin/ferry,
// and nothing else changes. verify reports unknown keys and bad values as
// warnings with status 0, so any line naming the unit fails the test.
// `systemd-analyze security --offline` then rates the sandbox; the test
// wants it at "OK" (an exposure of 2.0 or less, of 10).
func TestDeploySystemdUnit(t *testing.T) {
	t.Parallel()
	systemdAnalyzePeer.require(t)
	unit := filepath.Join(t.TempDir(), "ferry.service")
	writeFile(t, unit, deployFile(t, "ferry.service", "/usr/local/bin/ferry", ferryPath(t)))

	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "systemd-analyze", args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	out, err := run("verify", unit)
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "ferry.service") || strings.Contains(line, unit) {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}

	// The threshold is in tenths: 20 is an exposure of 2.0.
	out, err = run("security", "--offline=true", "--threshold=20", "--no-pager", unit)
	summary := out
	if i := strings.LastIndex(out, "Overall exposure level"); i >= 0 {
		summary = strings.TrimSpace(out[i:])
	}
	if err != nil {
		t.Errorf("systemd-analyze security: %v; the unit's sandbox is weaker than 2.0:\n%s", err, out)
	}
	t.Logf("systemd-analyze security: %s", summary)
}
