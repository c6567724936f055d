//go:build linux

// Command tunnel benchmarks Ferry's tunnel end to end against the ceilings
// of its topology and against chisel. Run it through scripts/bench-tunnel.
//
// Every setup carries the same load, from this process, to the same
// backend (this binary re-executed as -role backend: a sink, an echo and a
// source on one port, the first byte of a connection picking the mode),
// all on 127.0.0.1:
//
//   - raw: straight to the backend;
//   - relay: through two TCP relays in separate processes (this binary as
//     -role relay), each copying through a 32 KiB user-space buffer: the
//     hops of ferry forward → gateway without framing, the ceiling of the
//     topology; relay-splice (not run by default) lets Go splice(2);
//   - relay3: through three such relays, the hops of the exposed path
//     (one relay more than the forward path) without framing, its ceiling;
//   - ferry, ferry-nocomp: ferry forward and ferry serve (the -ferry
//     binary), compression enabled and disabled in the gateway's config;
//   - ferry-expose: the reverse tunnel, ferry forward → ferry serve →
//     ferry expose → backend, to a service with backend = "expose" that
//     ferry expose serves from the backend's address (ferry-expose-nocomp,
//     not run by default, with compression disabled);
//   - chisel: chisel client and chisel server (the -chisel binary);
//   - chisel-reverse: chisel server --reverse and a chisel client with an
//     R: remote, chisel's reverse mode (two processes, where ferry-expose
//     has three).
//
// The workloads, each setup in turn for one workload before the next so
// that a busy moment of the machine does not land on one setup only:
//
//   - upN: N connections each write 64 KiB chunks to the sink for
//     -duration, then a last chunk, and wait for the sink's byte count,
//     which must equal what was sent; MB/s (10^6 bytes) delivered, timed
//     from the first write to the last count;
//   - downN: N connections read what the source sends for -duration;
//   - rt: one connection sends -small bytes and waits for their echo, in
//     turn; round trips per second;
//   - idle: -idle client sessions (client.Connect, in this process) to a
//     fresh gateway process (this binary as -role gateway: the
//     gateway.New+Serve of ferry serve, but it can be told to collect
//     garbage), then an idle stream on each, then one 32 KiB echo on each
//     stream; the gateway's RSS, Go heap and stack growth per session and
//     per stream, from /proc/PID/status and runtime.MemStats.
//
// CPU time of each process (/proc/PID/stat) is taken over each window and
// reported per MB or per round trip, with the share of the machine that
// other processes and the hypervisor took meanwhile (/proc/stat), and the
// tunnel processes' read and write syscalls and context switches
// (/proc/PID/io, /proc/PID/task/*/status). With -profile DIR the Ferry
// forward setups run this binary as -role gateway and -role forward
// (gateway.New+Serve and client.Connect+Forward, what ferry serve and
// ferry forward run; the exposed setups still run the ferry binary)
// writing CPU profiles (and with -mutex, mutex and
// block profiles) to DIR, and the idle gateway writes its live heap. With
// -alt NAME=PATH a patched ferry binary runs as one more setup, side by
// side with the others. Linux only.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	var rf roleFlags
	flag.StringVar(&rf.role, "role", "", "run as `ROLE` (internal: backend, relay, gateway, forward)")
	flag.StringVar(&rf.to, "to", "", "relay role: the `ADDR` to relay to")
	flag.BoolVar(&rf.splice, "splice", false, "relay role: io.Copy between the TCP connections (splice)")
	flag.StringVar(&rf.config, "config", "", "gateway role: config `FILE`")
	flag.StringVar(&rf.url, "url", "", "forward role: tunnel `URL`")
	flag.StringVar(&rf.service, "service", benchService, "forward role: `SERVICE`")
	flag.StringVar(&rf.cpuprofile, "cpuprofile", "", "gateway and forward roles: write a CPU profile to `FILE`")
	flag.StringVar(&rf.memprofile, "memprofile", "", "gateway role: write the live heap to `FILE` when told \"heap\"")
	flag.StringVar(&rf.mutexprof, "mutexprofile", "", "gateway and forward roles: write mutex and block (FILE.block) profiles to `FILE`")
	ferryBin := flag.String("ferry", "", "the ferry binary `PATH`")
	chiselBin := flag.String("chisel", "", "the chisel binary `PATH`")
	setupsFlag := flag.String("setups", strings.Join(setupNames, ","), "comma-separated setups, from "+strings.Join(append(slices.Clone(setupNames), extraSetups...), ", "))
	testsFlag := flag.String("tests", "up1,up8,down1,rt,idle", "comma-separated workloads: upN, downN (N connections), rt, idle")
	duration := flag.Duration("duration", 3*time.Second, "length of each bulk window")
	rtDuration := flag.Duration("rt-duration", 2*time.Second, "length of each round-trip window")
	warmup := flag.Duration("warmup", 300*time.Millisecond, "round trips before each round-trip window")
	small := flag.Int("small", 64, "round-trip message size, in bytes")
	idleN := flag.Int("idle", 1000, "sessions (and streams) for the idle test")
	rounds := flag.Int("rounds", 1, "measure each case this many times (setups in turn) and report the median")
	payload := flag.String("payload", "random", "bulk payload: random (incompressible) or text (compressible)")
	profileDir := flag.String("profile", "", "run the Ferry setups in-process and write CPU profiles of the gateway and forward to `DIR`")
	mutex := flag.Bool("mutex", false, "with -profile: also mutex and block profiles")
	perfDir := flag.String("perf", "", "record each tunnel process (the ferry binaries, relays, chisel) with perf record -e cpu-clock -g over each window, to `DIR`/SETUP-TEST-ROLE.perf (the last round's); perf's own CPU then counts in the figures")
	altFlag := flag.String("alt", "", "comma-separated `NAME=PATH`: extra setups NAME, each like ferry but with the ferry binary at PATH (say, a patched build), to compare in the same run")
	altNoComp := flag.Bool("alt-nocomp", false, "run the -alt setups with compression disabled, like ferry-nocomp")
	flag.Parse()

	if rf.role != "" {
		rf.payload = *payload
		if err := runRole(rf); err != nil {
			fmt.Fprintf(os.Stderr, "bench-tunnel: %s: %v\n", rf.role, err)
			os.Exit(1)
		}
		return
	}

	which := strings.Split(*setupsFlag, ",")
	alts := map[string]string{}
	if *altFlag != "" {
		for _, a := range strings.Split(*altFlag, ",") {
			name, path, ok := strings.Cut(a, "=")
			if !ok || name == "" || path == "" || slices.Contains(which, name) || setupDesc[name] != "" {
				fatal(fmt.Errorf("-alt: %q is not NAME=PATH with a new NAME", a))
			}
			alts[name] = path
			which = append(which, name)
		}
	}
	for _, s := range which {
		if alts[s] != "" {
			continue
		}
		if !slices.Contains(setupNames, s) && !slices.Contains(extraSetups, s) {
			fatal(fmt.Errorf("-setups: unknown setup %q", s))
		}
		if strings.HasPrefix(s, "ferry") && *ferryBin == "" && (*profileDir == "" || slices.Contains(exposeSetups, s)) {
			fatal(errors.New("-ferry: the ferry binary is needed"))
		}
		if strings.HasPrefix(s, "chisel") && *chiselBin == "" {
			fatal(errors.New("-chisel: the chisel binary is needed"))
		}
	}
	tests := strings.Split(*testsFlag, ",")
	for _, t := range tests {
		if _, _, err := parseTest(t); err != nil {
			fatal(err)
		}
	}
	if *payload != "random" && *payload != "text" {
		fatal(fmt.Errorf("-payload: want random or text, not %q", *payload))
	}
	if *rounds < 1 || *small < 1 || *idleN < 1 {
		fatal(errors.New("-rounds, -small and -idle must be at least 1"))
	}

	self, err := os.Executable()
	if err != nil {
		fatal(err)
	}
	dir, err := os.MkdirTemp("", "bench-tunnel-")
	if err != nil {
		fatal(err)
	}
	e := &env{self: self, ferry: *ferryBin, chisel: *chiselBin, dir: dir, payload: *payload, mutex: *mutex, alts: alts, altComp: !*altNoComp}
	if *perfDir != "" {
		if err := os.MkdirAll(*perfDir, 0o755); err != nil {
			fatal(err)
		}
		e.perfDir = *perfDir
	}
	if *profileDir != "" {
		if err := os.MkdirAll(*profileDir, 0o755); err != nil {
			fatal(err)
		}
		e.profileDir = *profileDir
	}

	var (
		mu     sync.Mutex // guards procs against the signal handler
		procs  []*proc
		setups []*setup
	)
	keep := func(ps ...*proc) {
		mu.Lock()
		defer mu.Unlock()
		procs = append(procs, ps...)
	}
	killAll := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range procs {
			p.kill()
		}
	}
	fail := func(err error) {
		killAll()
		fmt.Fprintf(os.Stderr, "bench-tunnel: logs kept in %s\n", dir)
		fatal(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		killAll()
		os.Exit(130)
	}()

	start := time.Now()
	load0 := loadAvg()
	p := newPool(*payload)
	e.backend, e.backendAddr, err = e.startRole("backend", "-role", "backend", "-payload", *payload)
	if err != nil {
		fail(err)
	}
	keep(e.backend)
	for _, name := range which {
		s, err := e.startSetup(name)
		if err != nil {
			fail(err)
		}
		keep(s.procs()...)
		if err := check(s.addr, p, 15*time.Second); err != nil {
			fail(fmt.Errorf("%s does not carry the load: %w%s", name, err, logTails(s)))
		}
		setups = append(setups, s)
	}

	fmt.Printf("bench-tunnel: setups %s; one load generator (this process) and one backend process for all; %d CPUs, %s, load average %s at start\n",
		strings.Join(which, ", "), runtime.NumCPU(), runtime.Version(), load0)
	fmt.Printf("bench-tunnel: %s payload; bulk windows %v, round-trip windows %v after %v of warm-up; %d round(s)\n",
		*payload, *duration, *rtDuration, *warmup, *rounds)
	if e.profileDir != "" {
		fmt.Printf("bench-tunnel: -profile: the Ferry setups run in-process roles (gateway.New+Serve, client.Connect+Forward), not the ferry binary\n")
	}

	rep := &report{setups: which, small: *small, payload: *payload, results: map[string]map[string]result{}, alts: alts, cpus: runtime.NumCPU()}
	for _, t := range tests {
		if t == "idle" {
			continue
		}
		runs := map[string][]result{}
		for range *rounds {
			for _, s := range setups {
				r, err := measure(e, s, p, t, *duration, *rtDuration, *warmup, *small)
				if err != nil {
					fail(fmt.Errorf("%s, %s: %w%s", s.name, t, err, logTails(s)))
				}
				runs[s.name] = append(runs[s.name], r)
			}
		}
		rep.tests = append(rep.tests, t)
		rep.results[t] = map[string]result{}
		for name, rs := range runs {
			rep.results[t][name] = median(rs)
		}
	}
	if slices.Contains(tests, "idle") {
		r, err := idle(e, *idleN)
		if err != nil {
			fail(fmt.Errorf("idle: %w", err))
		}
		rep.idle = &r
	}
	for _, s := range setups {
		s.stop()
	}
	e.backend.stop()
	rep.load1 = loadAvg()
	rep.print(os.Stdout)
	fmt.Printf("\nbench-tunnel: done in %.0f s; load average %s at start, %s at end\n", time.Since(start).Seconds(), load0, rep.load1)
	if e.profileDir != "" {
		fmt.Printf("bench-tunnel: profiles in %s (go tool pprof -top FILE)\n", e.profileDir)
	}
	os.RemoveAll(dir)
}

// parseTest splits "up8" into ("up", 8); "rt" and "idle" have no count.
func parseTest(t string) (kind string, n int, err error) {
	if t == "rt" || t == "idle" {
		return t, 1, nil
	}
	for _, k := range []string{"up", "down"} {
		if rest, ok := strings.CutPrefix(t, k); ok {
			n, err := strconv.Atoi(rest)
			if err != nil || n < 1 {
				break
			}
			return k, n, nil
		}
	}
	return "", 0, fmt.Errorf("-tests: %q is not upN, downN, rt or idle", t)
}

// result is one measurement with the CPU time and I/O counts of each
// process in it.
type result struct {
	measurement
	cpu map[string]float64  // seconds, by "srv", "cli", "exp", "backend", "load", and "machine" (all busy CPU) and "steal" from /proc/stat
	io  map[string]ioCounts // by "srv", "cli", "exp", "backend"
}

func (r result) rate() float64 {
	if r.ops > 0 {
		return float64(r.ops) / r.secs
	}
	return float64(r.bytes) / r.secs
}

// measure runs one workload on one setup and takes each process's CPU and
// I/O counts over the timed window.
func measure(e *env, s *setup, p *pool, test string, dur, rtDur, warmup time.Duration, small int) (result, error) {
	pids := map[string]int{"backend": e.backend.pid()}
	if s.srv != nil {
		pids["srv"] = s.srv.pid()
	}
	if s.cli != nil {
		pids["cli"] = s.cli.pid()
	}
	if s.exp != nil {
		pids["exp"] = s.exp.pid()
	}
	type snapshot struct {
		cpu map[string]float64
		io  map[string]ioCounts
	}
	sample := func() (snapshot, error) {
		sn := snapshot{cpu: map[string]float64{"load": selfCPU()}, io: map[string]ioCounts{}}
		busy, steal, err := sysCPU()
		if err != nil {
			return sn, err
		}
		sn.cpu["machine"], sn.cpu["steal"] = busy, steal
		for k, pid := range pids {
			c, err := cpuSeconds(pid)
			if err != nil {
				return sn, err
			}
			sn.cpu[k] = c
			if sn.io[k], err = readIO(pid); err != nil {
				return sn, err
			}
		}
		return sn, nil
	}
	var s0 snapshot
	var serr error
	var pr *perfRecord
	mark := func() {
		if e.perfDir != "" {
			if pr, serr = startPerf(e.perfDir, s.name, test, pids); serr != nil {
				return
			}
		}
		s0, serr = sample()
	}
	kind, n, _ := parseTest(test)
	var m measurement
	var err error
	switch kind {
	case "up":
		mark()
		m, err = upload(s.addr, p, n, dur)
	case "down":
		mark()
		m, err = download(s.addr, n, dur)
	case "rt":
		m, err = roundTrips(s.addr, small, warmup, rtDur, mark)
	}
	s1, serr1 := sample()
	pr.stop()
	if err != nil {
		return result{}, err
	}
	err = serr1
	if err == nil {
		err = serr
	}
	if err != nil {
		return result{}, err
	}
	r := result{measurement: m, cpu: map[string]float64{}, io: map[string]ioCounts{}}
	for k := range s1.cpu {
		r.cpu[k] = s1.cpu[k] - s0.cpu[k]
	}
	for k := range s1.io {
		r.io[k] = s1.io[k].sub(s0.io[k])
	}
	return r, nil
}

// median returns the run with the median rate.
func median(rs []result) result {
	sort.Slice(rs, func(i, j int) bool { return rs[i].rate() < rs[j].rate() })
	return rs[len(rs)/2]
}

func logTails(s *setup) string {
	var b strings.Builder
	for _, p := range s.procs() {
		b.WriteString(p.logTail())
	}
	return b.String()
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench-tunnel:", err)
	os.Exit(1)
}
