//go:build linux

package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// report holds every result of a run.
type report struct {
	setups  []string
	tests   []string                     // bulk and rt workloads, in run order
	results map[string]map[string]result // [test][setup]
	idle    *idleResult
	small   int
	payload string
	load1   string
	alts    map[string]string
	cpus    int
}

// table prints rows of cells, the first column left-aligned, the rest
// right-aligned.
type table struct {
	tw *tabwriter.Writer
}

func newTable(out io.Writer) *table {
	return &table{tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)}
}

func (t *table) row(cells ...string) {
	cells[0] = fmt.Sprintf("%-19s", cells[0]) // the longest setup name, ferry-expose-nocomp
	fmt.Fprintln(t.tw, strings.Join(cells, "\t")+"\t")
}

func (t *table) flush() { t.tw.Flush() }

// heading names a workload's figure.
func (rep *report) heading(test string) string {
	kind, n, _ := parseTest(test)
	switch kind {
	case "up":
		return fmt.Sprintf("up %d MB/s", n)
	case "down":
		return fmt.Sprintf("down %d MB/s", n)
	}
	return "RT/s"
}

// value is a workload's figure: MB/s or round trips per second.
func (rep *report) value(test, setup string) (float64, bool) {
	r, ok := rep.results[test][setup]
	if !ok || r.secs == 0 {
		return 0, false
	}
	if r.ops > 0 {
		return float64(r.ops) / r.secs, true
	}
	return float64(r.bytes) / 1e6 / r.secs, true
}

func (rep *report) print(out io.Writer) {
	fmt.Fprintf(out, "\nSetups\n")
	for _, s := range rep.setups {
		d := setupDesc[s]
		if d == "" {
			d = "as ferry, with the -alt binary " + rep.alts[s]
		}
		fmt.Fprintf(out, "  %-19s %s\n", s, d)
	}
	if len(rep.tests) > 0 {
		fmt.Fprintf(out, "\nWorkloads: upN = N connections streaming %s 64 KiB chunks to a sink that discards them (MB = 10^6 bytes\n"+
			"delivered, timed to the sink's count); downN = N connections reading from a source; RT/s = %d-byte\n"+
			"request, %d-byte echo, one connection, sequential\n", rep.payload, rep.small, rep.small)
		t := newTable(out)
		head := []string{"setup"}
		for _, test := range rep.tests {
			head = append(head, rep.heading(test))
		}
		t.row(append(head, "µs/RT")...)
		for _, s := range rep.setups {
			cells := []string{s}
			var us string
			for _, test := range rep.tests {
				v, ok := rep.value(test, s)
				switch {
				case !ok:
					cells = append(cells, "-")
				case test == "rt":
					cells = append(cells, fmt.Sprintf("%.0f", v))
					us = fmt.Sprintf("%.1f", 1e6/v)
				default:
					cells = append(cells, fmt.Sprintf("%.0f", v))
				}
			}
			if us == "" {
				us = "-"
			}
			t.row(append(cells, us)...)
		}
		t.flush()
		for _, base := range []string{"raw", "relay", "relay3"} {
			if slices.Contains(rep.setups, base) {
				rep.ratios(out, "÷ "+base, rep.setups, base)
			}
		}
		// The forward setups compare with chisel's forward mode; the
		// exposed ones with chisel's reverse mode and with Ferry's own
		// forward path, one hop shorter.
		var ferries, exposes []string
		for _, s := range rep.setups {
			switch {
			case slices.Contains(exposeSetups, s):
				exposes = append(exposes, s)
			case strings.HasPrefix(s, "ferry") || rep.alts[s] != "":
				ferries = append(ferries, s)
			}
		}
		if len(ferries) > 0 && slices.Contains(rep.setups, "chisel") {
			rep.ratios(out, "÷ chisel", ferries, "chisel")
		}
		for _, base := range []string{"ferry", "chisel-reverse"} {
			if len(exposes) > 0 && slices.Contains(rep.setups, base) {
				rep.ratios(out, "÷ "+base, exposes, base)
			}
		}
		rep.printCPU(out)
		rep.cpuRatios(out, ferries, exposes)
		rep.printIO(out)
		rep.targets(out, ferries, exposes)
	}
	if r := rep.idle; r != nil {
		fmt.Fprintf(out, "\nIdle: gateway process (gateway.New+Serve in this binary, compression enabled) with %d client sessions\n"+
			"(opened in %.1f s), then one idle stream on each (backend connected, no bytes yet). Growth per session or\n"+
			"stream of VmRSS as is (no forced GC), of VmRSS after runtime.GC+debug.FreeOSMemory, of Go heap in use\n"+
			"and of goroutine stacks (both after GC), and goroutines. used = the same streams after each carried one 32 KiB\n"+
			"echo of text and went idle again, at once and 5 s later (compressors of idle tunnels are released after 2-4 s;\n"+
			"buffers allocated but never written are not in RSS until bytes pass)\n", r.n, r.openSecs)
		t := newTable(out)
		t.row("per", "RSS B", "RSS B after GC", "heap B", "stack B", "goroutines")
		t.row("idle session", f0(r.sessRaw), f0(r.sessRSS), f0(r.sessHeap), f0(r.sessStack), fmt.Sprintf("%.2f", r.sessG))
		t.row("idle stream", f0(r.streamRaw), f0(r.streamRSS), f0(r.streamHeap), f0(r.streamStack), fmt.Sprintf("%.2f", r.g))
		t.row("used, at once", f0(r.justRaw), "", f0(r.justHeap), "", "")
		t.row("used, 5 s on", "", f0(r.usedRSS), f0(r.usedHeap), f0(r.usedStack), "")
		t.flush()
		verdict := "met"
		if r.sessRaw >= 32<<10 || r.sessRSS >= 32<<10 {
			verdict = "MISSED"
		}
		fmt.Fprintf(out, "target: gateway RSS per idle session under 32 KiB (32768 B): %s (%.1f KiB as is, %.1f KiB after GC)\n",
			verdict, r.sessRaw/1024, r.sessRSS/1024)
	}
}

func f0(v float64) string { return fmt.Sprintf("%.0f", v) }

// ratios prints each setup's figures divided by base's.
func (rep *report) ratios(out io.Writer, title string, setups []string, base string) {
	fmt.Fprintf(out, "\n%s: each figure divided by %s's (above 1 = faster)\n", title, base)
	t := newTable(out)
	head := []string{"setup"}
	for _, test := range rep.tests {
		head = append(head, rep.heading(test))
	}
	t.row(head...)
	for _, s := range setups {
		if s == base {
			continue
		}
		cells := []string{s}
		for _, test := range rep.tests {
			v, ok1 := rep.value(test, s)
			b, ok2 := rep.value(test, base)
			if !ok1 || !ok2 || b == 0 {
				cells = append(cells, "-")
				continue
			}
			cells = append(cells, fmt.Sprintf("%.2f", v/b))
		}
		t.row(cells...)
	}
	t.flush()
}

// printCPU prints each process's CPU time per MB (bulk) or per round trip.
func (rep *report) printCPU(out io.Writer) {
	fmt.Fprintf(out, "\nCPU per MB (bulk, ms) or per round trip (RT, µs), from /proc/PID/stat over each window (10 ms ticks):\n"+
		"srv = server side (relay2, ferry serve, chisel server), cli = client side (relay1, ferry forward, chisel client),\n"+
		"exp = the hop nearest the backend in three-hop setups (relay3, ferry expose), backend, load = this process;\n"+
		"tunnel = srv + cli + exp. Of the 100%% per CPU of the machine over the window: ours = these processes, others =\n"+
		"every other process, steal = taken by the hypervisor (a busy host)\n")
	t := newTable(out)
	t.row("setup", "workload", "srv", "cli", "exp", "tunnel", "backend", "load", "ours %", "others %", "steal %")
	for _, test := range rep.tests {
		for _, s := range rep.setups {
			r, ok := rep.results[test][s]
			if !ok {
				continue
			}
			div, unit := float64(r.bytes)/1e6, 1e3 // ms per MB
			if test == "rt" {
				div, unit = float64(r.ops), 1e6 // µs per RT
			}
			c := func(k string) string {
				v, ok := r.cpu[k]
				if !ok {
					return "-"
				}
				return fmt.Sprintf("%.2f", v*unit/div)
			}
			tun := "-"
			if _, ok := r.cpu["srv"]; ok {
				tun = fmt.Sprintf("%.2f", (r.cpu["srv"]+r.cpu["cli"]+r.cpu["exp"])*unit/div)
			}
			var ours float64
			for _, k := range []string{"srv", "cli", "exp", "backend", "load"} {
				ours += r.cpu[k]
			}
			pct := func(v float64) string { return fmt.Sprintf("%.0f", 100*v/r.secs/float64(rep.cpus)) }
			t.row(s, rep.heading(test), c("srv"), c("cli"), c("exp"), tun, c("backend"), c("load"), pct(ours), pct(max(0, r.cpu["machine"]-ours)), pct(r.cpu["steal"]))
		}
	}
	t.flush()
}

// targets checks the figures against the issues' targets: for the
// forward setups, issue 1's; for the exposed ones, issue 12's (bulk ≥ 0.8×
// the three-relay chain, the round trips reported beside).
func (rep *report) targets(out io.Writer, ferries, exposes []string) {
	type target struct {
		test, base string
		min        float64
	}
	var ts, ets []target
	for _, test := range rep.tests {
		if kind, _, _ := parseTest(test); kind == "up" {
			ts = append(ts, target{test, "relay", 0.7}, target{test, "raw", 0.3}, target{test, "chisel", 5})
			ets = append(ets, target{test, "relay3", 0.8})
		}
	}
	ts = append(ts, target{"rt", "chisel", 2})
	ets = append(ets, target{"rt", "relay3", 0})
	var lines []string
	check := func(setups []string, ts []target) {
		for _, f := range setups {
			for _, tg := range ts {
				v, ok1 := rep.value(tg.test, f)
				b, ok2 := rep.value(tg.test, tg.base)
				if !ok1 || !ok2 || b == 0 {
					continue
				}
				if tg.min == 0 {
					lines = append(lines, fmt.Sprintf("  %-19s %-11s %-6s %-6s  %5.2f×  reported", f, rep.heading(tg.test), "", tg.base, v/b))
					continue
				}
				verdict := "met"
				if v/b < tg.min {
					verdict = "MISSED"
				}
				lines = append(lines, fmt.Sprintf("  %-19s %-11s ≥ %.1f× %-6s  %5.2f×  %s", f, rep.heading(tg.test), tg.min, tg.base, v/b, verdict))
			}
		}
	}
	check(ferries, ts)
	check(exposes, ets)
	if len(lines) > 0 {
		fmt.Fprintf(out, "\nTargets (issues 1 and 12): forward bulk ≥ 0.7× relay, ≥ 0.3× raw, ≥ 5× chisel; forward round trips ≥ 2× chisel;\n"+
			"exposed bulk ≥ 0.8× relay3 (its round trips reported)\n%s\n", strings.Join(lines, "\n"))
	}
}

// printIO prints the tunnel processes' read and write syscalls per MB (or
// per round trip), their average size, and context switches.
func (rep *report) printIO(out io.Writer) {
	fmt.Fprintf(out, "\nSyscalls of the tunnel processes (/proc/PID/io syscr, syscw, rchar, wchar; sockets included) and\n"+
		"context switches of all their threads, per MB (bulk) or per round trip (RT); KiB = average bytes per call\n")
	t := newTable(out)
	t.row("setup", "workload", "srv rd", "KiB", "srv wr", "KiB", "srv cs", "cli rd", "KiB", "cli wr", "KiB", "cli cs",
		"exp rd", "KiB", "exp wr", "KiB", "exp cs", "backend rd", "KiB")
	for _, test := range rep.tests {
		for _, s := range rep.setups {
			r, ok := rep.results[test][s]
			if !ok {
				continue
			}
			div := float64(r.bytes) / 1e6
			if test == "rt" {
				div = float64(r.ops)
			}
			cells := []string{s, rep.heading(test)}
			for _, k := range []string{"srv", "cli", "exp", "backend"} {
				c, ok := r.io[k]
				if !ok {
					if k == "backend" {
						cells = append(cells, "-", "-")
					} else {
						cells = append(cells, "-", "-", "-", "-", "-")
					}
					continue
				}
				kib := func(b, n float64) string {
					if n == 0 {
						return "-"
					}
					return fmt.Sprintf("%.1f", b/n/1024)
				}
				cells = append(cells, fmt.Sprintf("%.1f", c.syscr/div), kib(c.rchar, c.syscr))
				if k != "backend" {
					cells = append(cells, fmt.Sprintf("%.1f", c.syscw/div), kib(c.wchar, c.syscw), fmt.Sprintf("%.1f", c.ctxsw/div))
				}
			}
			t.row(cells...)
		}
	}
	t.flush()
}

// cpuRatios divides the tunnel processes' CPU per MB (or per round trip)
// of the relays and of chisel by Ferry's: above 1 means Ferry spends less.
// On a machine shared with others this is steadier than the rates, which
// also measure how soon each process gets a CPU back.
func (rep *report) cpuRatios(out io.Writer, ferries, exposes []string) {
	per := func(test, setup string) (float64, bool) {
		r, ok := rep.results[test][setup]
		if !ok {
			return 0, false
		}
		c, ok := r.cpu["srv"]
		if !ok {
			return 0, false
		}
		c += r.cpu["cli"] + r.cpu["exp"]
		if test == "rt" {
			return c / float64(r.ops), r.ops > 0
		}
		return c / float64(r.bytes), r.bytes > 0
	}
	var rows [][]string
	for _, pair := range []struct {
		base   string
		setups []string
	}{{"relay", ferries}, {"chisel", ferries}, {"relay3", exposes}, {"chisel-reverse", exposes}} {
		base := pair.base
		if !slices.Contains(rep.setups, base) {
			continue
		}
		for _, f := range pair.setups {
			cells := []string{fmt.Sprintf("%-34s", base+" vs "+f)}
			for _, test := range rep.tests {
				b, ok1 := per(test, base)
				v, ok2 := per(test, f)
				if !ok1 || !ok2 || v == 0 {
					cells = append(cells, "-")
					continue
				}
				cells = append(cells, fmt.Sprintf("%.2f", b/v))
			}
			rows = append(rows, cells)
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(out, "\nTunnel CPU (srv + cli + exp) per MB or per RT: the relays' or chisel's divided by Ferry's (below 1 = Ferry spends more);\n"+
		"steadier than the rates on a shared machine\n")
	t := newTable(out)
	head := []string{"ratio"}
	for _, test := range rep.tests {
		head = append(head, rep.heading(test))
	}
	t.row(head...)
	for _, r := range rows {
		t.row(r...)
	}
	t.flush()
}
