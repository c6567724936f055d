//go:build linux

// Command ws benchmarks WebSocket echo servers side by side: Ferry's tunnel
// package against github.com/lxzan/gws, github.com/gorilla/websocket and
// github.com/coder/websocket. Run it through scripts/bench-ws.
//
// Each server runs in its own child process (this binary re-executed with
// -server KIND, on 127.0.0.1:0), so its CPU time (/proc/PID/stat) and RSS
// (/proc/PID/status) are its own. One client, Ferry's tunnel client, drives
// them all, in turn for each workload so that a busy moment of the machine
// does not land on one server only:
//
//   - idle: -idle connections opened and left idle; the server's RSS and
//     Go heap+stack growth per connection, both measured after the server
//     has run a GC and returned free memory to the OS;
//   - rt: -small-byte messages, each connection sending one and waiting for
//     its echo; round trips per second, for each count in -conns;
//   - mb: -large-byte messages streamed with up to -window unanswered per
//     connection; echoed payload (counted one way) in MB/s (10^6 bytes).
//
// Throughput includes the client's CPU, which shares the machine with the
// server; the server-CPU columns (CPU per 1000 round trips, per MB) are the
// fairer comparison of the servers' own cost. Linux only.
package main

import (
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
	serverKind := flag.String("server", "", "run as the echo server `KIND` (internal: the benchmark starts these itself)")
	duration := flag.Duration("duration", 3*time.Second, "length of each measured window")
	warmup := flag.Duration("warmup", 500*time.Millisecond, "traffic before each window starts")
	connsFlag := flag.String("conns", "1,16", "comma-separated numbers of concurrent connections for rt and mb")
	idleN := flag.Int("idle", 1000, "idle connections opened per server")
	small := flag.Int("small", 64, "message size for round trips, in bytes")
	large := flag.Int("large", 64<<10, "message size for streaming, in bytes")
	window := flag.Int("window", 4, "streamed messages in flight per connection")
	rounds := flag.Int("rounds", 1, "measure each case this many times (servers in turn) and report the median")
	serversFlag := flag.String("servers", strings.Join(kinds, ","), "comma-separated servers to run, from "+strings.Join(append(kinds, extraKinds...), ", "))
	testsFlag := flag.String("tests", "idle,rt,mb", "comma-separated tests to run: idle, rt, mb")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the -profile server's process to `FILE`")
	memprofile := flag.String("memprofile", "", "write an allocation profile of the -profile server's process to `FILE`, and its live heap with the idle connections open to FILE.idle")
	profileKind := flag.String("profile", "ferry", "server `KIND` that -cpuprofile and -memprofile apply to")
	flag.Parse()

	if *serverKind != "" {
		if err := runServer(*serverKind, *cpuprofile, *memprofile); err != nil {
			fmt.Fprintf(os.Stderr, "bench-ws: %s server: %v\n", *serverKind, err)
			os.Exit(1)
		}
		return
	}

	conns, err := parseInts(*connsFlag)
	if err != nil {
		fatal(fmt.Errorf("-conns: %w", err))
	}
	which := strings.Split(*serversFlag, ",")
	for _, k := range which {
		if !slices.Contains(kinds, k) && !slices.Contains(extraKinds, k) {
			fatal(fmt.Errorf("-servers: unknown server %q (want some of %v)", k, append(kinds, extraKinds...)))
		}
	}
	tests := strings.Split(*testsFlag, ",")
	for _, t := range tests {
		if t != "idle" && t != "rt" && t != "mb" {
			fatal(fmt.Errorf("-tests: unknown test %q (want some of idle, rt, mb)", t))
		}
	}
	if *small < 1 || *large < 1 || *window < 1 || *rounds < 1 || *idleN < 1 {
		fatal(fmt.Errorf("-small, -large, -window, -rounds and -idle must be at least 1"))
	}

	var (
		mu      sync.Mutex // guards servers against the signal handler
		servers []*server
	)
	killAll := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range servers {
			s.kill()
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		killAll()
		os.Exit(130)
	}()
	for _, k := range which {
		var extra []string
		if k == *profileKind {
			if *cpuprofile != "" {
				extra = append(extra, "-cpuprofile", *cpuprofile)
			}
			if *memprofile != "" {
				extra = append(extra, "-memprofile", *memprofile)
			}
		}
		s, err := startServer(k, extra...)
		if err != nil {
			killAll()
			fatal(err)
		}
		mu.Lock()
		servers = append(servers, s)
		mu.Unlock()
		if err := check(s, *large); err != nil {
			killAll()
			fatal(err)
		}
	}
	fail := func(err error) {
		killAll()
		fatal(err)
	}

	start := time.Now()
	fmt.Printf("bench-ws: servers %s; one client (Ferry's tunnel) for all; %d CPUs, %s; %v windows after %v of warm-up\n",
		strings.Join(which, ", "), runtime.NumCPU(), runtime.Version(), *duration, *warmup)

	var rep report
	rep.small, rep.large, rep.window = *small, *large, *window
	if slices.Contains(tests, "idle") {
		for _, s := range servers {
			r, err := idle(s, *idleN)
			if err != nil {
				fail(err)
			}
			rep.idle = append(rep.idle, r)
		}
	}
	for _, test := range []string{"rt", "mb"} {
		if !slices.Contains(tests, test) {
			continue
		}
		for _, n := range conns {
			runs := make(map[string][]result)
			for range *rounds {
				for _, s := range servers {
					var r result
					var err error
					if test == "rt" {
						r, err = roundTrips(s, n, *small, *warmup, *duration)
					} else {
						r, err = stream(s, n, *large, *window, *warmup, *duration)
					}
					if err != nil {
						fail(err)
					}
					runs[s.kind] = append(runs[s.kind], r)
				}
			}
			for _, s := range servers {
				r := median(runs[s.kind])
				if test == "rt" {
					rep.rt = append(rep.rt, r)
				} else {
					rep.mb = append(rep.mb, r)
				}
			}
		}
	}
	for _, s := range servers {
		_, hwm, err := memBytes(s.pid())
		if err != nil {
			fail(err)
		}
		rep.peak = append(rep.peak, peak{s.kind, hwm})
	}
	for _, s := range servers {
		s.stop()
	}
	rep.print(os.Stdout, which)
	fmt.Printf("\nbench-ws: done in %.0f s\n", time.Since(start).Seconds())
	if *cpuprofile != "" || *memprofile != "" {
		fmt.Printf("bench-ws: profiles of the %s server: %s %s (go tool pprof -top FILE)\n", *profileKind, *cpuprofile, *memprofile)
	}
}

// median returns the run with the median message rate.
func median(rs []result) result {
	rate := func(r result) float64 { return float64(r.msgs) / r.secs }
	sort.Slice(rs, func(i, j int) bool { return rate(rs[i]) < rate(rs[j]) })
	return rs[len(rs)/2]
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench-ws:", err)
	os.Exit(1)
}
