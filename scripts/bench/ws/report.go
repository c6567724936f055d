//go:build linux

package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// peak is a server's peak RSS over the whole run.
type peak struct {
	kind string
	hwm  int64
}

// negotiated is what a deflate server agreed to, as the client saw it.
type negotiated struct {
	kind, params string
}

// report holds every result of a run.
type report struct {
	small, large, window int
	zsize                int
	idle                 []idleResult
	rt, mb               []result
	mbz                  []result
	zparams              []negotiated
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
	if len(rep.mbz) > 0 {
		fmt.Fprintf(out, "\nCompressed throughput: %d-byte binary messages streamed, %d in flight per connection, permessage-deflate on every server;\n", rep.zsize, rep.window)
		fmt.Fprintf(out, "payload text = Redis commands carrying JSON records, random = random bytes; the client (Ferry) offers context takeover.\n")
		fmt.Fprintf(out, "Wire = bytes on the client's TCP connections ÷ payload bytes: c→s is Ferry's client compressing, s→c the server.\n")
		fmt.Fprintf(out, "\"ferry off\" is the same Ferry server with the client not offering compression. Negotiated:\n")
		for _, n := range rep.zparams {
			fmt.Fprintf(out, "  %-8s %s\n", n.kind, n.params)
		}
		if ferryLevel != 0 {
			fmt.Fprintf(out, "Ferry's server compresses at flate level %d (-zlevel), not its default.\n", ferryLevel)
		}
		row("server", "payload", "conns", "MB/s", "msgs/s", "srv CPU ms/MB", "srv allocs/msg", "srv B alloc/msg", "client CPU ms/MB", "wire c→s", "wire s→c")
		for _, r := range rep.mbz {
			mb := float64(r.bytes) / 1e6
			row(zname(r), r.payload, fmt.Sprint(r.conns), f("%.0f", mb/r.secs), f("%.0f", float64(r.msgs)/r.secs),
				f("%.2f", r.srvCPU*1e3/mb), f("%.2f", float64(r.mallocs)/float64(r.msgs)), f("%.0f", float64(r.alloced)/float64(r.msgs)), f("%.2f", r.cliCPU*1e3/mb),
				f("%.3f", float64(r.wireOut)/float64(r.sent)), f("%.3f", float64(r.wireIn)/float64(r.bytes)))
		}
		tw.Flush()
	}
	if len(rep.peak) > 0 {
		fmt.Fprintf(out, "\nPeak RSS of each server process over the whole run (VmHWM)\n")
		w := 0
		for _, p := range rep.peak {
			w = max(w, len(p.kind))
		}
		for _, p := range rep.peak {
			row(fmt.Sprintf("%-*s", w, p.kind), fmt.Sprintf("%.1f MiB", float64(p.hwm)/(1<<20)))
		}
		tw.Flush()
	}
	rep.printRatios(out, order)
	rep.printZRatios(out, order)
}

// zname is the name of a compressed-streaming row.
func zname(r result) string {
	if !r.deflate {
		return r.kind + " off"
	}
	return r.kind
}

// printRatios prints Ferry's figures divided by each competitor's.
func (rep *report) printRatios(out io.Writer, order []string) {
	if len(order) < 2 || order[0] != "ferry" || len(rep.rt)+len(rep.mb)+len(rep.idle) == 0 {
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

// printZRatios prints the compressed-streaming comparison: Ferry ÷ each
// competitor, the wire ratios side by side, and the targets of issue 4.
func (rep *report) printZRatios(out io.Writer, order []string) {
	if len(rep.mbz) == 0 || order[0] != "ferry" {
		return
	}
	others := order[1:]
	find := func(kind string, deflate bool, payload string, conns int) (result, bool) {
		for _, r := range rep.mbz {
			if r.kind == kind && r.deflate == deflate && r.payload == payload && r.conns == conns {
				return r, true
			}
		}
		return result{}, false
	}
	rate := func(r result) float64 { return float64(r.bytes) / r.secs }
	cpuPerMB := func(r result) float64 { return r.srvCPU / float64(r.bytes) }
	wireIn := func(r result) float64 { return float64(r.wireIn) / float64(r.bytes) }
	wireOut := func(r result) float64 { return float64(r.wireOut) / float64(r.sent) }
	type key struct {
		payload string
		conns   int
	}
	var keys []key
	for _, r := range rep.mbz {
		if !slices.Contains(keys, key{r.payload, r.conns}) {
			keys = append(keys, key{r.payload, r.conns})
		}
	}
	const w = 34 // width of the first column

	if len(others) > 0 {
		fmt.Fprintf(out, "\nCompressed, Ferry ÷ competitor (both with permessage-deflate). Rates: above 1 means Ferry is faster. CPU: below 1 means Ferry uses less.\n")
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		head := []string{fmt.Sprintf("%-*s", w, "metric")}
		for _, o := range others {
			head = append(head, "vs "+o)
		}
		fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
		line := func(name string, k key, get func(result) float64) {
			fr, ok := find("ferry", true, k.payload, k.conns)
			if !ok {
				return
			}
			cells := []string{fmt.Sprintf("%-*s", w, name)}
			for _, o := range others {
				r, ok := find(o, true, k.payload, k.conns)
				if !ok || get(r) == 0 {
					cells = append(cells, "-")
					continue
				}
				cells = append(cells, fmt.Sprintf("%.2f", get(fr)/get(r)))
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
		}
		for _, k := range keys {
			line(k.payload+" MB/s, "+plural(k.conns, "conn"), k, rate)
			line(k.payload+" srv CPU per MB, "+plural(k.conns, "conn"), k, cpuPerMB)
		}
		tw.Flush()
	}

	fmt.Fprintf(out, "\nWire ratio (TCP bytes ÷ payload bytes), side by side; lower is smaller on the wire\n")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{fmt.Sprintf("%-*s", w, "direction")}
	head = append(head, order...)
	head = append(head, "ferry off")
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, k := range keys {
		for _, dir := range []struct {
			name string
			get  func(result) float64
		}{{"s→c", wireIn}, {"c→s", wireOut}} {
			cells := []string{fmt.Sprintf("%-*s", w, k.payload+" "+dir.name+", "+plural(k.conns, "conn"))}
			for i, o := range append(slices.Clone(order), "ferry") {
				r, ok := find(o, i < len(order), k.payload, k.conns)
				if !ok {
					cells = append(cells, "-")
					continue
				}
				cells = append(cells, fmt.Sprintf("%.3f", dir.get(r)))
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
		}
	}
	tw.Flush()

	// The targets of issue 4.
	fmt.Fprintf(out, "\nTargets (issue 4)\n")
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	for _, k := range keys {
		fr, ok := find("ferry", true, k.payload, k.conns)
		if !ok {
			continue
		}
		at := k.payload + ", " + plural(k.conns, "conn")
		switch k.payload {
		case "text":
			best, bestRate := "", 0.0
			for _, o := range others {
				if r, ok := find(o, true, k.payload, k.conns); ok && rate(r) > bestRate {
					best, bestRate = o, rate(r)
				}
			}
			if best != "" {
				x := rate(fr) / bestRate
				fmt.Fprintf(tw, "%s\tMB/s ÷ fastest competitor (%s)\t%.2f\ttarget ≥ 1.00\t%s\n", at, best, x, verdict(x >= 1))
			}
			if g, ok := find("gws", true, k.payload, k.conns); ok {
				x := cpuPerMB(fr) / cpuPerMB(g)
				fmt.Fprintf(tw, "%s\tsrv CPU per MB ÷ gws's\t%.2f\ttarget ≤ 0.60\t%s\n", at, x, verdict(x <= 0.6))
				fmt.Fprintf(tw, "%s\twire s→c, Ferry vs gws\t%.3f vs %.3f\ttarget ≤ gws\t%s\n", at, wireIn(fr), wireIn(g), verdict(wireIn(fr) <= wireIn(g)))
			}
		case "random":
			if off, ok := find("ferry", false, k.payload, k.conns); ok {
				x := rate(fr) / rate(off)
				fmt.Fprintf(tw, "%s\tMB/s ÷ Ferry without compression\t%.2f\ttarget ≥ 0.90\t%s\n", at, x, verdict(x >= 0.9))
			}
		}
	}
	tw.Flush()
}
