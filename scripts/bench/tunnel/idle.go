//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/client"
)

// idleResult is what idle sessions and streams cost the gateway process.
type idleResult struct {
	n int
	// Growth per session (then per stream) of VmRSS as an operator sees
	// it (no forced GC), of VmRSS after runtime.GC + debug.FreeOSMemory
	// in both states, of Go heap in use and of goroutine stacks, and
	// goroutines per session (stream).
	sessRaw, sessRSS, sessHeap, sessStack, sessG     float64
	streamRaw, streamRSS, streamHeap, streamStack, g float64
	// Growth per stream once each has carried one 32 KiB echo of text
	// (compressible) and gone idle again: buffers that were allocated but
	// never written are not in RSS until bytes go through them. Just
	// after the echo (no forced GC, heap after GC) and 5 s later (after
	// GC), when the compressors of idle sessions have been released.
	justRaw, justHeap, usedRSS, usedHeap, usedStack float64
	openSecs                                        float64 // time to open the n sessions
}

// idle opens n client sessions to a fresh gateway process (this binary in
// the gateway role: the same gateway.New and Serve as ferry serve, but it
// can be told to collect garbage), then one idle stream on each, and
// reads the gateway's RSS from /proc before and after.
func idle(e *env, n int) (idleResult, error) {
	var r idleResult
	r.n = n
	cfg, err := e.writeFerryConfig("idle", true, "")
	if err != nil {
		return r, err
	}
	args := []string{"-role", "gateway", "-config", cfg}
	if e.profileDir != "" {
		args = append(args, "-memprofile", filepath.Join(e.profileDir, "idle-gateway.heap"))
	}
	gw, addr, err := e.startRole("idle-gateway", args...)
	if err != nil {
		return r, err
	}
	defer gw.stop()
	url := "ws://" + addr + "/tunnel"
	// A first session and stream warm up the code paths (and their
	// one-off allocations) before the baseline.
	warm, err := client.Connect(context.Background(), url, nil)
	if err != nil {
		return r, err
	}
	defer warm.Close()
	wc, err := warm.Dial(context.Background(), benchService)
	if err != nil {
		return r, err
	}
	defer wc.Close()
	// One echo, so that the backend counts the warm stream's connection
	// before the baseline is read: it counts in the goroutine that serves
	// it, which may start after Dial has returned.
	wc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := wc.Write([]byte{modeEcho, 'x'}); err != nil {
		return r, err
	}
	if _, err := io.ReadFull(wc, make([]byte, 1)); err != nil {
		return r, fmt.Errorf("warm-up echo: %w", err)
	}
	wc.SetDeadline(time.Time{})

	back0, err := e.backend.ask("stats")
	if err != nil {
		return r, err
	}
	st0, err := gw.ask("gc")
	if err != nil {
		return r, err
	}
	rss0, err := rssBytes(gw.pid())
	if err != nil {
		return r, err
	}

	sessions := make([]*client.Session, n)
	defer func() {
		for _, s := range sessions {
			if s != nil {
				s.Close()
			}
		}
	}()
	start := time.Now()
	if err := parallel(n, func(i int) error {
		s, err := client.Connect(context.Background(), url, &client.Options{MinBackoff: time.Second})
		sessions[i] = s
		return err
	}); err != nil {
		return r, fmt.Errorf("opening sessions: %w", err)
	}
	r.openSecs = time.Since(start).Seconds()
	if _, err := gw.waitConns(int64(n+1), 10*time.Second); err != nil {
		return r, err
	}
	time.Sleep(200 * time.Millisecond)
	raw1, err := rssBytes(gw.pid())
	if err != nil {
		return r, err
	}
	st1, err := gw.ask("gc")
	if err != nil {
		return r, err
	}
	rss1, err := rssBytes(gw.pid())
	if err != nil {
		return r, err
	}

	conns := make([]*client.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err := parallel(n, func(i int) error {
		c, err := sessions[i].Dial(context.Background(), benchService)
		conns[i] = c
		return err
	}); err != nil {
		return r, fmt.Errorf("opening streams: %w", err)
	}
	if _, err := e.backend.waitConns(back0.Conns+int64(n), 10*time.Second); err != nil {
		return r, err
	}
	time.Sleep(200 * time.Millisecond)
	raw2, err := rssBytes(gw.pid())
	if err != nil {
		return r, err
	}
	st2, err := gw.ask("gc")
	if err != nil {
		return r, err
	}
	rss2, err := rssBytes(gw.pid())
	if err != nil {
		return r, err
	}

	// Each stream carries one 32 KiB echo of text, then idles again.
	msg := append([]byte{modeEcho}, newPool("text").chunk(0)[:32<<10]...)
	if err := parallel(n, func(i int) error {
		c := conns[i]
		c.SetDeadline(time.Now().Add(30 * time.Second))
		defer c.SetDeadline(time.Time{})
		if _, err := c.Write(msg); err != nil {
			return err
		}
		_, err := io.ReadFull(c, make([]byte, len(msg)-1))
		return err
	}); err != nil {
		return r, fmt.Errorf("echo on the streams: %w", err)
	}
	time.Sleep(200 * time.Millisecond)
	raw3, err := rssBytes(gw.pid())
	if err != nil {
		return r, err
	}
	st3just, err := gw.ask("gc")
	if err != nil {
		return r, err
	}
	// Ferry releases a compressor after 2 to 4 s without messages
	// (tunnel/write.go, compressIdle).
	time.Sleep(5 * time.Second)
	cmd := "gc"
	if e.profileDir != "" {
		cmd = "heap"
	}
	st3, err := gw.ask(cmd)
	if err != nil {
		return r, err
	}
	rss3, err := rssBytes(gw.pid())
	if err != nil {
		return r, err
	}

	per := func(a, b int64) float64 { return float64(b-a) / float64(n) }
	peru := func(a, b uint64) float64 { return (float64(b) - float64(a)) / float64(n) }
	r.sessRaw, r.sessRSS = per(rss0, raw1), per(rss0, rss1)
	r.sessHeap, r.sessStack = peru(st0.HeapInuse, st1.HeapInuse), peru(st0.StackInuse, st1.StackInuse)
	r.sessG = float64(st1.Goroutines-st0.Goroutines) / float64(n)
	r.streamRaw, r.streamRSS = per(rss1, raw2), per(rss1, rss2)
	r.streamHeap, r.streamStack = peru(st1.HeapInuse, st2.HeapInuse), peru(st1.StackInuse, st2.StackInuse)
	r.g = float64(st2.Goroutines-st1.Goroutines) / float64(n)
	r.justRaw, r.justHeap = per(rss1, raw3), peru(st1.HeapInuse, st3just.HeapInuse)
	r.usedRSS = per(rss1, rss3)
	r.usedHeap, r.usedStack = peru(st1.HeapInuse, st3.HeapInuse), peru(st1.StackInuse, st3.StackInuse)
	return r, nil
}

// parallel runs f(0..n-1) on 8 goroutines and returns the first error.
func parallel(n int, f func(i int) error) error {
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range min(n, 8) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}
