//go:build linux

package tests

// The live status line of `ferry forward`, as a person sees it in a
// terminal: the test runs ferry forward under script(1), which gives it a
// pseudo-terminal, stops and restarts the gateway, and reads what the
// terminal got.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStatusLineThroughPty: the gateway goes down and comes back; the
// status line shows reconnecting, the next try's delay and the gateway's
// reason (a drain), then connected; a local connection made
// while the gateway is down waits, then gets through.
func TestStatusLineThroughPty(t *testing.T) {
	t.Parallel()
	scriptPath, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) is not installed (util-linux): no pseudo-terminal for the test")
	}
	ferry := ferryPath(t)
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	serve := func() *proc {
		p := startProc(t, "ferry serve", []string{ferry, "serve", "-listen", addr}, procOptions{stop: syscall.SIGTERM})
		p.stdout.wait(t, "ferry serve", servingLine, 1, 30*time.Second)
		return p
	}
	gw := serve()

	// script -q -f -e -c CMD FILE: the terminal's bytes go to FILE, flushed
	// as they come.
	typescript := filepath.Join(t.TempDir(), "typescript")
	startProc(t, "script ferry forward", []string{scriptPath, "-q", "-f", "-e", "-c",
		"stty cols 200; exec " + ferry + " forward -wait 60s ws://" + addr + "/tunnel 0=echo", typescript}, procOptions{stop: syscall.SIGTERM})
	shown := func() string {
		b, _ := os.ReadFile(typescript)
		return string(b)
	}
	waitShown := func(what string, re *regexp.Regexp) string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if m := re.FindString(shown()); m != "" {
				return m
			}
			if time.Now().After(deadline) {
				t.Fatalf("the terminal never showed %s; it got:\n%q", what, shown())
			}
			<-tick.C
		}
	}
	local := regexp.MustCompile(`forwarding (127\.0\.0\.1:\d+) -> echo`).FindStringSubmatch(waitShown("the forwarding line", regexp.MustCompile(`forwarding 127\.0\.0\.1:\d+ -> echo`)))[1]
	waitShown("connected", regexp.MustCompile(`connected to ws://`+regexp.QuoteMeta(addr)+`/tunnel \| 0 streams`))

	// The gateway shuts down (SIGTERM: 1001 for idle sessions).
	syscall.Kill(gw.cmd.Process.Pid, syscall.SIGTERM)
	<-gw.exited
	line := waitShown("reconnecting", regexp.MustCompile(`reconnecting, next try (in \d+s|in <1s|now): [^\r\x1b]*`))
	t.Logf("the status line said: %s", line)
	// A draining gateway sends a GoAway, then 1001: the reason shown is
	// the one that ended the tunnel first.
	if !regexp.MustCompile(`draining|shutting down|going away|1001`).MatchString(shown()) {
		t.Errorf("the terminal never showed the gateway's reason:\n%q", shown())
	}
	if !regexp.MustCompile(`next try in (\d+s|<1s)`).MatchString(shown()) {
		t.Errorf("the terminal never showed the next try's delay:\n%q", shown())
	}

	// A connection made while the gateway is down waits for it.
	c, err := net.Dial("tcp", local)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := len(shown())
	serve()
	waitShown("connected again", regexp.MustCompile(`connected to ws://`+regexp.QuoteMeta(addr)+`/tunnel`+`[^\r]*$`))
	if !strings.Contains(shown()[before:], "connected to") {
		t.Errorf("no connected line after the restart")
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "made while down\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := bufio.NewReader(c).ReadString('\n'); err != nil || got != "made while down\n" {
		t.Fatalf("the connection made while the gateway was down: %q, %v", got, err)
	}
}
