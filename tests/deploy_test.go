//go:build linux

package tests

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// TestDeployProbe builds deploy/probe, the container's health check, as
// deploy/Dockerfile does (CGO_ENABLED=0, -trimpath: a static binary with
// no ELF interpreter, for the empty base image), and runs it against a
// gateway running deploy/gateway.toml: 0 for /healthz and the admin
// /readyz, 1 for a 404 and for a port where nothing listens, 2 for a bad
// command line.
func TestDeployProbe(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "probe")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/ferrygw/ferry/deploy/probe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build deploy/probe: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("deploy/probe built with CGO_ENABLED=0 has an ELF interpreter: it would not run on scratch")
		}
	}
	f.Close()

	g := startProxyGateway(t)
	closed := "http://127.0.0.1:" + strconv.Itoa(freePort(t)) + "/healthz"
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"http://" + g.addr + "/healthz"}, 0},
		{[]string{g.admin + "/readyz"}, 0},
		{[]string{"http://" + g.addr + "/no-such-page"}, 1},
		{[]string{"-timeout", "2s", closed}, 1},
		{nil, 2},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, bin, tc.args...).CombinedOutput()
		cancel()
		got := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			got = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("probe %v: %v", tc.args, err)
		}
		if got != tc.want {
			t.Errorf("probe %v: exit status %d, want %d; output: %s", tc.args, got, tc.want, out)
		}
	}
}
