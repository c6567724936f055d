//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sync/atomic"
	"time"

	coderws "github.com/coder/websocket"
	"github.com/ferrygw/ferry/compress"
	"github.com/ferrygw/ferry/tunnel"
	gorillaws "github.com/gorilla/websocket"
	"github.com/lxzan/gws"
)

// kinds lists the echo servers in the order they are reported; Ferry first.
var kinds = []string{"ferry", "gws", "gorilla", "coder"}

// extraKinds are servers run only when -servers names them. "ferry" runs
// its echo loop on a goroutine of its own and returns from the handler at
// once, as the gateway does and as gws's README does, so net/http drops its
// per-connection state; "ferry-handler" keeps the loop inside the HTTP
// handler (as gorilla and coder are used here), to show what that costs.
var extraKinds = []string{"ferry-handler"}

// ferryLevel is the flate level of Ferry's deflate server, from -zlevel (0:
// the default).
var ferryLevel int

// readLimit is the largest message every server accepts.
const readLimit = 64 << 20

// live counts upgraded connections whose handler is still running, so the
// parent can wait for the real signal that N connections are open (or gone).
var live atomic.Int64

// echoHandler returns the HTTP handler of one server kind. Every kind reads
// a whole message into a buffer it reuses and writes it back as one frame,
// each in the way its library documents; all share net/http for the
// opening handshake. Compression is off unless deflate is true; then each
// accepts permessage-deflate with its own option, with context takeover
// where the library has it:
//
//   - ferry: AcceptOptions.Compression = &compress.Options{} (level 1,
//     threshold 256 bytes, context takeover, incompressible messages sent
//     as they are);
//   - gws: PermessageDeflate{Enabled, ServerContextTakeover,
//     ClientContextTakeover}, its defaults otherwise (level 1; with
//     takeover it compresses every message and limits both windows to 12
//     bits);
//   - gorilla: Upgrader.EnableCompression (no context takeover: gorilla
//     has none; level 1, every message);
//   - coder: CompressionContextTakeover (level 1).
func echoHandler(kind string, deflate bool) (http.Handler, error) {
	var ferryOpts tunnel.AcceptOptions
	ferryOpts.ReadLimit = readLimit
	if deflate {
		ferryOpts.Compression = &compress.Options{Level: ferryLevel}
	}
	switch kind {
	case "ferry-handler":
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := tunnel.Accept(w, r, &ferryOpts)
			if err != nil {
				return
			}
			live.Add(1)
			ferryEcho(c)
		}), nil
	case "ferry":
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := tunnel.Accept(w, r, &ferryOpts)
			if err != nil {
				return
			}
			live.Add(1)
			go ferryEcho(c)
		}), nil
	case "gws":
		opt := &gws.ServerOption{ReadMaxPayloadSize: readLimit}
		if deflate {
			opt.PermessageDeflate = gws.PermessageDeflate{Enabled: true, ServerContextTakeover: true, ClientContextTakeover: true}
		}
		up := gws.NewUpgrader(gwsEcho{}, opt)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := up.Upgrade(w, r)
			if err != nil {
				return
			}
			live.Add(1)
			go c.ReadLoop() // as gws's README does; OnClose counts it gone
		}), nil
	case "gorilla":
		up := &gorillaws.Upgrader{EnableCompression: deflate}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			live.Add(1)
			defer live.Add(-1)
			defer c.Close()
			c.SetReadLimit(readLimit)
			var buf bytes.Buffer
			for {
				typ, rd, err := c.NextReader()
				if err != nil {
					return
				}
				buf.Reset()
				if _, err := buf.ReadFrom(rd); err != nil {
					return
				}
				if err := c.WriteMessage(typ, buf.Bytes()); err != nil {
					return
				}
			}
		}), nil
	case "coder":
		mode := coderws.CompressionDisabled
		if deflate {
			mode = coderws.CompressionContextTakeover
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := coderws.Accept(w, r, &coderws.AcceptOptions{CompressionMode: mode})
			if err != nil {
				return
			}
			live.Add(1)
			defer live.Add(-1)
			defer c.CloseNow()
			c.SetReadLimit(readLimit)
			ctx := context.Background()
			var buf bytes.Buffer
			for {
				typ, rd, err := c.Reader(ctx)
				if err != nil {
					return
				}
				buf.Reset()
				if _, err := buf.ReadFrom(rd); err != nil {
					return
				}
				if err := c.Write(ctx, typ, buf.Bytes()); err != nil {
					return
				}
			}
		}), nil
	}
	return nil, fmt.Errorf("unknown server kind %q (want one of %v or %v)", kind, kinds, extraKinds)
}

// ferryEcho is tests/wsecho's echo loop: ReadAppend into a reused buffer.
// The loop runs under the profiler label deflate=on or off, whether the
// connection negotiated compression, so that a CPU profile of mbz can be
// split (go tool pprof -tagfocus deflate=on).
func ferryEcho(c *tunnel.Conn) {
	defer live.Add(-1)
	defer c.CloseNow()
	on := "off"
	if _, ok := c.Compression(); ok {
		on = "on"
	}
	pprof.Do(context.Background(), pprof.Labels("deflate", on), func(ctx context.Context) { ferryLoop(ctx, c) })
}

func ferryLoop(ctx context.Context, c *tunnel.Conn) {
	var buf []byte
	for {
		typ, msg, err := c.ReadAppend(ctx, buf[:0])
		if err != nil {
			return
		}
		buf = msg
		if err := c.Write(ctx, typ, msg); err != nil {
			return
		}
	}
}

// gwsEcho is the echo handler of gws's README ("Best Practice").
type gwsEcho struct{ gws.BuiltinEventHandler }

func (gwsEcho) OnClose(*gws.Conn, error) { live.Add(-1) }

func (gwsEcho) OnPing(c *gws.Conn, p []byte) { _ = c.WritePong(p) }

func (gwsEcho) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	_ = c.WriteMessage(m.Opcode, m.Bytes())
}

// serverStats is what a server process reports about itself on stdout.
type serverStats struct {
	Conns      int64
	Goroutines int
	HeapInuse  uint64
	StackInuse uint64
	Mallocs    uint64
	TotalAlloc uint64
	NumGC      uint32
}

// runServer is the child process: it serves kind's echo (with
// permessage-deflate when deflate is true) on 127.0.0.1:0, prints
// "listening ADDR", then answers commands read from stdin, one per line,
// with one "stats {json}" line each:
//
//	stats   report without disturbing anything
//	gc      collect garbage and return free memory to the OS, then report
//	heap    as gc, and write a heap profile to the -memprofile file + ".idle"
//
// It exits when stdin ends (the parent went away or said so), writing the
// profiles it was asked for.
func runServer(kind string, deflate bool, cpuprofile, memprofile string) error {
	h, err := echoHandler(kind, deflate)
	if err != nil {
		return err
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if memprofile != "" {
		runtime.MemProfileRate = 4096
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	fmt.Printf("listening %s\n", ln.Addr())

	sc := bufio.NewScanner(os.Stdin)
	enc := json.NewEncoder(os.Stdout)
	for sc.Scan() {
		switch sc.Text() {
		case "gc", "heap":
			runtime.GC()
			debug.FreeOSMemory()
			if sc.Text() == "heap" && memprofile != "" {
				if err := writeProfile("heap", memprofile+".idle"); err != nil {
					return err
				}
			}
		case "stats":
		default:
			return fmt.Errorf("unknown command %q", sc.Text())
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Print("stats ")
		if err := enc.Encode(serverStats{
			Conns:      live.Load(),
			Goroutines: runtime.NumGoroutine(),
			HeapInuse:  ms.HeapInuse,
			StackInuse: ms.StackInuse,
			Mallocs:    ms.Mallocs,
			TotalAlloc: ms.TotalAlloc,
			NumGC:      ms.NumGC,
		}); err != nil {
			return err
		}
	}
	ln.Close()
	if memprofile != "" {
		return writeProfile("allocs", memprofile)
	}
	return nil
}

func writeProfile(name, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
