//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; it
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// proc is one child process: a role of this binary (which answers "stats"
// and "gc" on stdin and exits when stdin ends), or a foreign program
// (ferry, chisel), which is ended by signal. Its stderr goes to a log file.
type proc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader // nil when stdout goes to the log
	log   string        // path of the log file
	role  bool          // a role of this binary
	done  chan struct{} // closed when the process has exited
}

// startProc starts path with args. With lines set, stdout is kept for
// readLine; otherwise it goes to the log too.
func startProc(logDir, name string, role, lines bool, path string, args ...string) (*proc, error) {
	logPath := filepath.Join(logDir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close() // the child holds its own descriptor
	cmd := exec.Command(path, args...)
	cmd.Stderr = lf
	// The child dies with us even if we are killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, log: logPath, role: role, done: make(chan struct{})}
	if role {
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
	}
	if lines {
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		p.out = bufio.NewReader(stdout)
	} else {
		cmd.Stdout = lf
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// readLine returns the next line of stdout, killing the process if none
// comes within timeout.
func (p *proc) readLine(timeout time.Duration) (string, error) {
	type res struct {
		s   string
		err error
	}
	c := make(chan res, 1)
	go func() {
		s, err := p.out.ReadString('\n')
		c <- res{strings.TrimSpace(s), err}
	}()
	select {
	case r := <-c:
		if r.err != nil {
			return r.s, fmt.Errorf("%s: %w%s", p.name, r.err, p.logTail())
		}
		return r.s, nil
	case <-time.After(timeout):
		p.kill()
		return "", fmt.Errorf("%s: no output within %v%s", p.name, timeout, p.logTail())
	}
}

// waitLine reads lines until one starts with prefix and returns the rest.
func (p *proc) waitLine(prefix string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		line, err := p.readLine(time.Until(deadline))
		if err != nil {
			return "", err
		}
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			return rest, nil
		}
	}
}

// drainStdout copies the rest of stdout away so the child never blocks on it.
func (p *proc) drainStdout() {
	if p.out != nil {
		go io.Copy(io.Discard, p.out)
	}
}

// logTail returns the last lines of the process's log, for an error.
func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.log)
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return "\n  " + p.name + " log:\n    " + strings.Join(lines, "\n    ")
}

// stats is what a role process reports about itself.
type stats struct {
	Conns      int64 // backend: open connections; gateway: sessions
	Goroutines int
	HeapInuse  uint64
	StackInuse uint64
	Mallocs    uint64
	TotalAlloc uint64
}

// ask sends a command ("stats" or "gc") to a role and decodes the answer.
func (p *proc) ask(cmd string) (stats, error) {
	var st stats
	if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
		return st, fmt.Errorf("%s: %w", p.name, err)
	}
	line, err := p.readLine(30 * time.Second)
	if err != nil {
		return st, err
	}
	js, ok := strings.CutPrefix(line, "stats ")
	if !ok {
		return st, fmt.Errorf("%s said %q", p.name, line)
	}
	return st, json.Unmarshal([]byte(js), &st)
}

// waitConns polls a role until it counts n connections (or sessions).
func (p *proc) waitConns(n int64, timeout time.Duration) (stats, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := p.ask("stats")
		if err != nil {
			return st, err
		}
		if st.Conns == n {
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("%s has %d connections after %v, want %d", p.name, st.Conns, timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the process: a role by closing its stdin (so that it writes
// its profiles), a foreign program by SIGTERM; either is killed, by pid,
// if it has not exited after a while.
func (p *proc) stop() {
	var grace time.Duration
	if p.role {
		p.stdin.Close()
		grace = 10 * time.Second
	} else {
		p.cmd.Process.Signal(syscall.SIGTERM)
		grace = 3 * time.Second
	}
	select {
	case <-p.done:
	case <-time.After(grace):
		p.kill()
		<-p.done
	}
}

// kill ends the process at once, by its pid.
func (p *proc) kill() { p.cmd.Process.Kill() }

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

// rssBytes returns VmRSS of process pid in bytes.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != "VmRSS" {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status: VmRSS: %w", pid, err)
		}
		return n << 10, nil
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// selfCPU is the CPU time this process (the load generator) has used.
func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// loadAvg is the first field of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// ioCounts are a process's I/O syscall counters (/proc/PID/io: read-like
// and write-like calls, sockets included, and the bytes they moved) and
// its threads' context switches (/proc/PID/task/*/status).
type ioCounts struct {
	rchar, wchar, syscr, syscw, ctxsw float64
}

func (a ioCounts) sub(b ioCounts) ioCounts {
	return ioCounts{a.rchar - b.rchar, a.wchar - b.wchar, a.syscr - b.syscr, a.syscw - b.syscw, a.ctxsw - b.ctxsw}
}

func readIO(pid int) (ioCounts, error) {
	var c ioCounts
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return c, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
		switch k {
		case "rchar":
			c.rchar = n
		case "wchar":
			c.wchar = n
		case "syscr":
			c.syscr = n
		case "syscw":
			c.syscw = n
		}
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread has exited
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
				n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				c.ctxsw += n
			}
		}
	}
	return c, nil
}

// sysCPU returns the machine's busy CPU seconds (all CPUs: user, nice,
// system, irq, softirq) and the time stolen by the hypervisor, from
// /proc/stat.
func sysCPU() (busy, steal float64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	v := make([]float64, 8)
	for i := range v {
		v[i], _ = strconv.ParseFloat(f[i+1], 64)
		v[i] /= clockTicks
	}
	// user nice system idle iowait irq softirq steal
	return v[0] + v[1] + v[2] + v[5] + v[6], v[7], nil
}
