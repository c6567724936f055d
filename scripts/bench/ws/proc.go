//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; it
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// server is one echo server child process.
type server struct {
	kind    string
	deflate bool   // permessage-deflate on
	params  string // with deflate: what the server agreed to, as the client saw it
	addr    string // host:port it listens on
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	out     *bufio.Reader
}

// name is kind, marked when the server has permessage-deflate on.
func (s *server) name() string {
	if s.deflate {
		return s.kind + " (deflate)"
	}
	return s.kind
}

// startServer re-executes this binary with -server kind (and -deflate) and
// waits for the line that gives its address.
func startServer(kind string, deflate bool, extra ...string) (*server, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"-server", kind}
	if deflate {
		args = append(args, "-deflate")
	}
	cmd := exec.Command(self, append(args, extra...)...)
	cmd.Stderr = os.Stderr
	// The child dies with us even if we are killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{kind: kind, deflate: deflate, cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	line, err := s.out.ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		s.stop()
		return nil, fmt.Errorf("%s server did not start (said %q): %v", s.name(), line, err)
	}
	s.addr = addr
	return s, nil
}

// pid is the server's process id.
func (s *server) pid() int { return s.cmd.Process.Pid }

// ask sends a command ("stats" or "gc") and decodes the answer.
func (s *server) ask(cmd string) (serverStats, error) {
	var st serverStats
	if _, err := io.WriteString(s.stdin, cmd+"\n"); err != nil {
		return st, fmt.Errorf("%s server: %w", s.name(), err)
	}
	line, err := s.out.ReadString('\n')
	if err != nil {
		return st, fmt.Errorf("%s server: %w", s.name(), err)
	}
	js, ok := strings.CutPrefix(line, "stats ")
	if !ok {
		return st, fmt.Errorf("%s server said %q", s.name(), line)
	}
	return st, json.Unmarshal([]byte(js), &st)
}

// waitConns polls the server until it counts n live connections.
func (s *server) waitConns(n int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := s.ask("stats")
		if err != nil {
			return err
		}
		if st.Conns == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s server has %d connections after %v, want %d", s.name(), st.Conns, timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the server: closing stdin asks it to exit (writing profiles);
// if it has not after 10 s it is killed, by its pid.
func (s *server) stop() {
	s.stdin.Close()
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// kill ends the server at once, by its pid.
func (s *server) kill() { s.cmd.Process.Kill() }

// cpuSeconds is the CPU time (user+system, all threads) process pid has
// used, from /proc/PID/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return float64(ut+st) / clockTicks, nil
}

// memBytes returns VmRSS and VmHWM (peak RSS) of process pid in bytes.
func memBytes(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status: %s: %w", pid, k, err)
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	return rss, hwm, nil
}

// selfCPU is the CPU time this process (the client) has used.
func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
