package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

// perfRecord is perf record (Linux perf, Debian's linux-perf) sampling
// the processes of one window with the cpu-clock software event, which
// works where the hardware counters do not (virtual machines), with call
// graphs by frame pointer (Go keeps them).
type perfRecord struct{ cmds []*exec.Cmd }

// startPerf starts perf record on each process in pids, writing
// DIR/SETUP-TEST-ROLE.perf.
func startPerf(dir, setup, test string, pids map[string]int) (*perfRecord, error) {
	path, err := exec.LookPath("perf")
	if err != nil {
		return nil, errors.New("-perf: no perf on PATH (Debian package linux-perf)")
	}
	pr := &perfRecord{}
	for role, pid := range pids {
		if role == "backend" {
			continue
		}
		out := filepath.Join(dir, fmt.Sprintf("%s-%s-%s.perf", setup, test, role))
		cmd := exec.Command(path, "record", "-q", "-e", "cpu-clock", "-F", "499", "-g", "-o", out, "-p", strconv.Itoa(pid))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			pr.stop()
			return nil, fmt.Errorf("-perf: %w", err)
		}
		pr.cmds = append(pr.cmds, cmd)
	}
	return pr, nil
}

// stop ends each perf record with SIGINT, which makes it write its file,
// and waits for it.
func (pr *perfRecord) stop() {
	if pr == nil {
		return
	}
	for _, c := range pr.cmds {
		_ = c.Process.Signal(syscall.SIGINT)
	}
	for _, c := range pr.cmds {
		_ = c.Wait()
	}
}
