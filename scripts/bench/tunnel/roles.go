//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"sync/atomic"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/gateway"
	"github.com/ferrygw/ferry/gateway/config"
)

// The backend speaks a one-byte protocol: the first byte a client sends
// picks the mode of the connection.
const (
	modeSink   = 'S' // read chunkSize-byte chunks and drop them; after a chunk whose first byte is 1, send the 8-byte count received so far
	modeEcho   = 'E' // send back every byte
	modeSource = 'D' // send chunks until the client goes away
)

// chunkSize is the unit of the sink and source modes and of every bulk write.
const chunkSize = 64 << 10

// roleFlags are the settings of a child process.
type roleFlags struct {
	role       string
	to         string // relay: where to connect
	splice     bool   // relay: io.Copy between the TCP connections (kernel splice)
	config     string // gateway: config file
	url        string // forward: tunnel URL
	service    string // forward: service name
	payload    string // backend: random or text
	cpuprofile string
	mutexprof  string
	memprofile string // gateway: live heap, written on the "heap" command
}

// live counts the connections (backend) a role has open.
var live atomic.Int64

// runRole is a child process: it listens on 127.0.0.1:0, prints
// "listening ADDR", then answers commands on stdin, one per line, with one
// "stats {json}" line each ("stats": report; "gc": collect garbage and
// return free memory to the OS, then report; "heap": as gc, and write the
// live heap to -memprofile). It exits when stdin ends, writing the
// profiles it was asked for.
func runRole(f roleFlags) error {
	if f.cpuprofile != "" {
		pf, err := os.Create(f.cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pf.Close()
		defer pprof.StopCPUProfile()
	}
	if f.mutexprof != "" {
		runtime.SetMutexProfileFraction(5)
		runtime.SetBlockProfileRate(10000) // one sample per 10 µs blocked
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	count := live.Load
	switch f.role {
	case "backend":
		p := newPool(f.payload)
		go accept(ln, func(c net.Conn) { serveBackend(c, p) })
	case "relay":
		go accept(ln, func(c net.Conn) { relay(c, f.to, f.splice) })
	case "gateway":
		cfg, err := config.Load(f.config)
		if err != nil {
			return err
		}
		srv, err := gateway.New(cfg, &gateway.Options{Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			return err
		}
		go srv.Serve(ln)
		count = func() int64 { return int64(srv.Sessions()) }
	case "forward":
		// What `ferry forward URL 127.0.0.1:0=SERVICE` does (cmd_client.go).
		sess, err := client.Connect(context.Background(), f.url, nil)
		if err != nil {
			return err
		}
		defer sess.Close()
		go sess.Forward(context.Background(), ln, f.service, func(err error) { fmt.Fprintln(os.Stderr, "forward:", err) })
	default:
		return fmt.Errorf("unknown role %q", f.role)
	}
	fmt.Printf("listening %s\n", ln.Addr())

	sc := bufio.NewScanner(os.Stdin)
	enc := json.NewEncoder(os.Stdout)
	for sc.Scan() {
		switch sc.Text() {
		case "gc", "heap":
			runtime.GC()
			debug.FreeOSMemory()
			if sc.Text() == "heap" && f.memprofile != "" {
				if err := writeProfile("heap", f.memprofile); err != nil {
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
		if err := enc.Encode(stats{
			Conns:      count(),
			Goroutines: runtime.NumGoroutine(),
			HeapInuse:  ms.HeapInuse,
			StackInuse: ms.StackInuse,
			Mallocs:    ms.Mallocs,
			TotalAlloc: ms.TotalAlloc,
		}); err != nil {
			return err
		}
	}
	if f.mutexprof != "" {
		if err := writeProfile("mutex", f.mutexprof); err != nil {
			return err
		}
		if err := writeProfile("block", f.mutexprof+".block"); err != nil {
			return err
		}
	}
	return nil
}

func writeProfile(name, file string) error {
	pf, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(pf, 0); err != nil {
		pf.Close()
		return err
	}
	return pf.Close()
}

func accept(ln net.Listener, serve func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go serve(c)
	}
}

// serveBackend is the sink, echo and source backend shared by every setup.
func serveBackend(c net.Conn, p *pool) {
	live.Add(1)
	defer live.Add(-1)
	defer c.Close()
	var mode [1]byte
	if _, err := io.ReadFull(c, mode[:]); err != nil {
		return
	}
	switch mode[0] {
	case modeSink:
		buf := make([]byte, chunkSize)
		var n uint64
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			n += chunkSize
			if buf[0] == 1 {
				var b [8]byte
				binary.BigEndian.PutUint64(b[:], n)
				if _, err := c.Write(b[:]); err != nil {
					return
				}
			}
		}
	case modeEcho:
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	case modeSource:
		for i := 0; ; i++ {
			if _, err := c.Write(p.chunk(i)); err != nil {
				return
			}
		}
	}
}

// relay connects c to addr and copies both ways, passing half-closes on.
// By default each direction is a user-space copy through a 32 KiB buffer
// (what a framing tunnel must do at least); with splice, io.Copy between
// the two *net.TCPConn, which Go turns into splice(2) and never brings the
// bytes into user space.
func relay(c net.Conn, addr string, splice bool) {
	defer c.Close()
	d, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer d.Close()
	var wg sync.WaitGroup
	half := func(dst, src net.Conn) {
		defer wg.Done()
		var err error
		if splice {
			_, err = io.Copy(dst, src)
		} else {
			// The wrappers hide ReadFrom and WriteTo, so io.CopyBuffer
			// really copies through buf.
			buf := make([]byte, 32<<10)
			_, err = io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf)
		}
		if err != nil {
			dst.Close()
			src.Close()
			return
		}
		dst.(*net.TCPConn).CloseWrite()
	}
	wg.Add(2)
	go half(d, c)
	go half(c, d)
	wg.Wait()
}
