//go:build linux

package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// peak is a server's peak RSS over the whole run.
type peak struct {
	kind string
	hwm  int64
}

// report holds every result of a run.
type report struct {
	small, large, window int
	idle                 []idleResult
	rt, mb               []result
	peak                 []peak
}

func (rep *report) print(out io.Writer, order []string) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	// The first column, a name, is padded here so that it reads left-aligned.
	row := func(cells ...string) {
		cells[0] = fmt.Sprintf("%-8s", cells[0])
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	f := func(format string, v float64) string { return fmt.Sprintf(format, v) }

	if len(rep.idle) > 0 {
		fmt.Fprintf(out, "\nIdle connections: server memory growth per open idle connection, after a forced GC + FreeOSMemory\n")
		row("server", "conns", "RSS B/conn", "Go heap B/conn", "stack B/conn", "goroutines/conn")
		for _, r := range rep.idle {
			row(r.kind, fmt.Sprint(r.n), f("%.0f", r.rssPer), f("%.0f", r.heapPer), f("%.0f", r.stackPer), f("%.2f", r.goroutines))
		}
		tw.Flush()
	}
	if len(rep.rt) > 0 {
		fmt.Fprintf(out, "\nRound trips: %d-byte binary messages, each connection sends one and waits for its echo\n", rep.small)
		row("server", "conns", "round trips/s", "µs/RT", "srv CPU ms/1k RT", "srv allocs/RT", "srv B alloc/RT", "client CPU ms/1k RT")
		for _, r := range rep.rt {
			k := float64(r.msgs) / 1000
			row(r.kind, fmt.Sprint(r.conns), f("%.0f", float64(r.msgs)/r.secs), f("%.1f", r.secs*1e6*float64(r.conns)/float64(r.msgs)),
				f("%.1f", r.srvCPU*1e3/k), f("%.2f", float64(r.mallocs)/float64(r.msgs)), f("%.0f", float64(r.alloced)/float64(r.msgs)), f("%.1f", r.cliCPU*1e3/k))
		}
		tw.Flush()
	}
	if len(rep.mb) > 0 {
		fmt.Fprintf(out, "\nThroughput: %d-byte binary messages streamed, %d in flight per connection; MB = 10^6 bytes echoed, counted one way\n", rep.large, rep.window)
		row("server", "conns", "MB/s", "msgs/s", "srv CPU ms/MB", "srv allocs/msg", "srv B alloc/msg", "client CPU ms/MB")
		for _, r := range rep.mb {
			mb := float64(r.bytes) / 1e6
			row(r.kind, fmt.Sprint(r.conns), f("%.0f", mb/r.secs), f("%.0f", float64(r.msgs)/r.secs),
				f("%.2f", r.srvCPU*1e3/mb), f("%.2f", float64(r.mallocs)/float64(r.msgs)), f("%.0f", float64(r.alloced)/float64(r.msgs)), f("%.2f", r.cliCPU*1e3/mb))
		}
		tw.Flush()
	}
	if len(rep.peak) > 0 {
		fmt.Fprintf(out, "\nPeak RSS of each server process over the whole run (VmHWM)\n")
		for _, p := range rep.peak {
			row(p.kind, fmt.Sprintf("%.1f MiB", float64(p.hwm)/(1<<20)))
		}
		tw.Flush()
	}
	rep.printRatios(out, order)
}

// printRatios prints Ferry's figures divided by each competitor's.
func (rep *report) printRatios(out io.Writer, order []string) {
	if len(order) < 2 || order[0] != "ferry" {
		return
	}
	others := order[1:]
	fmt.Fprintf(out, "\nFerry ÷ competitor. Rates: above 1 means Ferry is faster. CPU and memory: below 1 means Ferry uses less.\n")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{fmt.Sprintf("%-28s", "metric")}
	for _, o := range others {
		head = append(head, "vs "+o)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	line := func(name string, get func(kind string) (float64, bool)) {
		ferry, ok := get("ferry")
		if !ok {
			return
		}
		cells := []string{fmt.Sprintf("%-28s", name)}
		for _, o := range others {
			v, ok := get(o)
			if !ok || v == 0 {
				cells = append(cells, "-")
				continue
			}
			cells = append(cells, fmt.Sprintf("%.2f", ferry/v))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	find := func(rs []result, kind string, conns int) (result, bool) {
		for _, r := range rs {
			if r.kind == kind && r.conns == conns {
				return r, true
			}
		}
		return result{}, false
	}
	for _, n := range connCounts(rep.rt) {
		line("round trips/s, "+plural(n, "conn"), func(k string) (float64, bool) {
			r, ok := find(rep.rt, k, n)
			return float64(r.msgs) / r.secs, ok
		})
		line("srv CPU per RT, "+plural(n, "conn"), func(k string) (float64, bool) {
			r, ok := find(rep.rt, k, n)
			return r.srvCPU / float64(r.msgs), ok
		})
	}
	for _, n := range connCounts(rep.mb) {
		line("MB/s, "+plural(n, "conn"), func(k string) (float64, bool) {
			r, ok := find(rep.mb, k, n)
			return float64(r.bytes) / r.secs, ok
		})
		line("srv CPU per MB, "+plural(n, "conn"), func(k string) (float64, bool) {
			r, ok := find(rep.mb, k, n)
			return r.srvCPU / float64(r.bytes), ok
		})
	}
	idle := func(get func(idleResult) float64) func(string) (float64, bool) {
		return func(k string) (float64, bool) {
			for _, r := range rep.idle {
				if r.kind == k {
					return get(r), true
				}
			}
			return 0, false
		}
	}
	line("idle RSS per conn", idle(func(r idleResult) float64 { return r.rssPer }))
	line("idle Go heap+stack per conn", idle(func(r idleResult) float64 { return r.heapPer + r.stackPer }))
	tw.Flush()
}

// connCounts lists the connection counts of rs in first-seen order.
func connCounts(rs []result) []int {
	var out []int
	for _, r := range rs {
		seen := false
		for _, n := range out {
			seen = seen || n == r.conns
		}
		if !seen {
			out = append(out, r.conns)
		}
	}
	return out
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
