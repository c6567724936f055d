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
//   - mbz: mb with permessage-deflate, against a second set of server
//     processes that have it on, each with its own library's option (see
//     echoHandler), and the client offering it with context takeover and
//     failing the run if a server declines. -zsize-byte messages of two
//     payloads: protocol text (Redis commands carrying JSON records) and
//     random bytes. Besides MB/s and server CPU per MB it reports the wire
//     ratio, bytes on the client's TCP connections ÷ payload bytes, in each
//     direction (server→client shows the server's compressor), and runs
//     Ferry's server once more with the client not offering compression,
//     as the baseline for random bytes.
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
	testsFlag := flag.String("tests", "idle,rt,mb", "comma-separated tests to run: idle, rt, mb, mbz (mb with permessage-deflate on every server)")
	zsize := flag.Int("zsize", 16<<10, "message size for mbz, in bytes")
	zpayloads := flag.String("zpayloads", "text,random", "comma-separated payloads for mbz: text, random")
	deflate := flag.Bool("deflate", false, "with -server: turn permessage-deflate on (internal)")
	flag.IntVar(&ferryLevel, "zlevel", 0, "flate `level` of Ferry's deflate server, 1 to 9, to explore (0: compress.Options' default, 1; the issue's targets are for the default)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the -profile server's process to `FILE` (of its deflate process to FILE.deflate if mbz runs along with other tests)")
	memprofile := flag.String("memprofile", "", "write an allocation profile of the -profile server's process to `FILE`, and its live heap with the idle connections open to FILE.idle")
	profileKind := flag.String("profile", "ferry", "server `KIND` that -cpuprofile and -memprofile apply to")
	flag.Parse()

	if *serverKind != "" {
		if err := runServer(*serverKind, *deflate, *cpuprofile, *memprofile); err != nil {
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
		if t != "idle" && t != "rt" && t != "mb" && t != "mbz" {
			fatal(fmt.Errorf("-tests: unknown test %q (want some of idle, rt, mb, mbz)", t))
		}
	}
	if *small < 1 || *large < 1 || *window < 1 || *rounds < 1 || *idleN < 1 {
		fatal(fmt.Errorf("-small, -large, -window, -rounds and -idle must be at least 1"))
	}
	if *zsize < 1024 {
		fatal(fmt.Errorf("-zsize must be at least 1024"))
	}
	payloads := strings.Split(*zpayloads, ",")
	for _, p := range payloads {
		if p != "text" && p != "random" {
			fatal(fmt.Errorf("-zpayloads: unknown payload %q (want some of text, random)", p))
		}
	}
	plain := slices.ContainsFunc(tests, func(t string) bool { return t != "mbz" })
	withZ := slices.Contains(tests, "mbz")

	var (
		mu       sync.Mutex // guards servers and zservers against the signal handler
		servers  []*server  // compression off, for idle, rt and mb
		zservers []*server  // permessage-deflate on, for mbz
	)
	killAll := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range slices.Concat(servers, zservers) {
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
	// The profile files of the -profile server: its deflate process gets
	// suffixed names when there is a plain one too.
	profileArgs := func(k string, deflate bool) []string {
		if k != *profileKind {
			return nil
		}
		suffix := ""
		if deflate && plain {
			suffix = ".deflate"
		}
		var extra []string
		if *cpuprofile != "" {
			extra = append(extra, "-cpuprofile", *cpuprofile+suffix)
		}
		if *memprofile != "" {
			extra = append(extra, "-memprofile", *memprofile+suffix)
		}
		return extra
	}
	var textMsgs, randomMsgs [][]byte
	if withZ {
		textMsgs, randomMsgs = protocolMessages(*zsize), randomMessages(*zsize)
	}
	for _, deflate := range []bool{false, true} {
		if !deflate && !plain || deflate && !withZ {
			continue
		}
		for _, k := range which {
			extra := profileArgs(k, deflate)
			if deflate && ferryLevel != 0 {
				extra = append(extra, "-zlevel", strconv.Itoa(ferryLevel))
			}
			s, err := startServer(k, deflate, extra...)
			if err != nil {
				killAll()
				fatal(err)
			}
			mu.Lock()
			if deflate {
				zservers = append(zservers, s)
			} else {
				servers = append(servers, s)
			}
			mu.Unlock()
			if deflate {
				err = checkDeflate(s, textMsgs[0], randomMsgs[0])
			} else {
				err = check(s, *large)
			}
			if err != nil {
				killAll()
				fatal(err)
			}
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
	rep.small, rep.large, rep.window, rep.zsize = *small, *large, *window, *zsize
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
	if withZ {
		for _, s := range zservers {
			rep.zparams = append(rep.zparams, negotiated{s.kind, s.params})
		}
		for _, n := range conns {
			for _, pl := range []struct {
				name string
				msgs [][]byte
			}{{"text", textMsgs}, {"random", randomMsgs}} {
				if !slices.Contains(payloads, pl.name) {
					continue
				}
				// Each round runs every server in turn, then Ferry's once
				// more with the client not offering compression.
				type run struct {
					s  *server
					dc dialConfig
				}
				var order []run
				for _, s := range zservers {
					order = append(order, run{s, dialConfig{deflate: true}})
				}
				for _, s := range zservers {
					if s.kind == "ferry" {
						order = append(order, run{s, dialConfig{}})
					}
				}
				// Rounds start at a different run each, so that no
				// server always follows the same one.
				runs := make([][]result, len(order))
				for round := range *rounds {
					for j := range order {
						i := (round + j) % len(order)
						o := order[i]
						r, err := streamDeflate(o.s, n, pl.msgs, *window, *warmup, *duration, o.dc)
						if err != nil {
							fail(err)
						}
						r.payload = pl.name
						runs[i] = append(runs[i], r)
					}
				}
				for i := range order {
					rep.mbz = append(rep.mbz, median(runs[i]))
				}
			}
		}
	}
	for _, s := range slices.Concat(servers, zservers) {
		_, hwm, err := memBytes(s.pid())
		if err != nil {
			fail(err)
		}
		rep.peak = append(rep.peak, peak{kind: s.name(), hwm: hwm})
	}
	for _, s := range slices.Concat(servers, zservers) {
		s.stop()
	}
	rep.print(os.Stdout, which)
	fmt.Printf("\nbench-ws: done in %.0f s\n", time.Since(start).Seconds())
	if *cpuprofile != "" || *memprofile != "" {
		var files []string
		for _, f := range []string{*cpuprofile, *memprofile} {
			switch {
			case f == "":
			case plain && withZ:
				files = append(files, f, f+".deflate")
			default:
				files = append(files, f)
			}
		}
		fmt.Printf("bench-ws: profiles of the %s server: %s (go tool pprof -top FILE)\n", *profileKind, strings.Join(files, " "))
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
