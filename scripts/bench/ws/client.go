//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/compress"
	"github.com/ferrygw/ferry/tunnel"
)

// The one client for every server is Ferry's tunnel client: binary
// messages, context.Background() on the hot path (no deadline watchers),
// ReadAppend into a reused buffer.

// result is one timed measurement against one server.
type result struct {
	kind    string
	conns   int
	secs    float64 // wall time of the measured window
	msgs    int64   // messages echoed back to the client
	bytes   int64   // payload bytes echoed back (one way)
	srvCPU  float64 // server CPU seconds in the window
	cliCPU  float64 // client (this process) CPU seconds in the window
	mallocs uint64  // server heap allocations in the window
	alloced uint64  // server bytes allocated in the window

	// Compressed streaming (mbz) only.
	payload string // "text" or "random"
	deflate bool   // permessage-deflate negotiated (false: Ferry's baseline)
	sent    int64  // payload bytes the client wrote in the window
	wireOut int64  // bytes the client wrote to TCP in the window
	wireIn  int64  // bytes the client read from TCP in the window
}

// idleResult is the memory an idle connection costs a server.
type idleResult struct {
	kind       string
	n          int
	rssPer     float64 // VmRSS growth per connection, after GC in both states
	heapPer    float64 // HeapInuse growth per connection, after GC
	stackPer   float64 // StackInuse growth per connection
	goroutines float64 // goroutines per connection
}

// counter is one worker's tally, padded to its own cache line.
type counter struct {
	msgs, bytes, sent atomic.Int64
	_                 [40]byte
}

// wire counts the bytes that the client's connections move over TCP, frame
// headers included, through a net.Conn wrapper given to tunnel.Dial.
type wire struct {
	in, out atomic.Int64
	_       [48]byte
}

func (w *wire) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: nc, w: w}, nil
}

// countingConn embeds the net.Conn interface, not *net.TCPConn, so that no
// write (writev included) can get past its Write uncounted.
type countingConn struct {
	net.Conn
	w *wire
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.w.in.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.w.out.Add(int64(n))
	return n, err
}

// CloseWrite keeps the half-close that tunnel uses on a TCP connection.
func (c *countingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// dialConfig is how the client dials: offering permessage-deflate (Ferry's
// defaults: level 1, context takeover) and requiring the server to accept
// it, and through a byte-counting connection.
type dialConfig struct {
	deflate bool
	wire    *wire // nil: no counting
}

func wsURL(s *server) string { return "ws://" + s.addr + "/" }

// dialN opens n connections to s, a few at a time.
func dialN(s *server, n int, dc dialConfig) ([]*tunnel.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conns := make([]*tunnel.Conn, n)
	errs := make(chan error, 1)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, 8) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				opts := &tunnel.DialOptions{ReadLimit: readLimit}
				if dc.deflate {
					opts.Compression = &compress.Options{}
				}
				if dc.wire != nil {
					opts.NetDial = dc.wire.dial
				}
				c, _, err := tunnel.Dial(ctx, wsURL(s), opts)
				if err == nil && dc.deflate {
					if _, ok := c.Compression(); !ok {
						c.CloseNow()
						err = fmt.Errorf("%s server declined permessage-deflate", s.name())
					}
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					cancel()
					return
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		closeAll(conns)
		return nil, err
	default:
		return conns, nil
	}
}

func closeAll(conns []*tunnel.Conn) {
	for _, c := range conns {
		if c != nil {
			c.CloseNow()
		}
	}
}

// check round-trips one small and one large message and compares them.
func check(s *server, large int) error {
	conns, err := dialN(s, 1, dialConfig{})
	if err != nil {
		return err
	}
	defer closeAll(conns)
	c := conns[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, size := range []int{0, 64, large} {
		p := randomBytes(size)
		if err := c.Write(ctx, tunnel.MessageBinary, p); err != nil {
			return err
		}
		typ, got, err := c.Read(ctx)
		if err != nil {
			return err
		}
		if typ != tunnel.MessageBinary || !bytes.Equal(got, p) {
			return fmt.Errorf("%s server: %d-byte message came back as %v of %d bytes, different", s.kind, size, typ, len(got))
		}
	}
	return nil
}

// checkDeflate makes sure a deflate server negotiated permessage-deflate
// (s.params records what it agreed to) and really compresses: its echo of
// protocol text must take fewer bytes on the wire than the text, and
// random bytes and a short message must come back intact.
func checkDeflate(s *server, text, random []byte) error {
	var w wire
	conns, err := dialN(s, 1, dialConfig{deflate: true, wire: &w})
	if err != nil {
		return err
	}
	defer closeAll(conns)
	c := conns[0]
	params, _ := c.Compression()
	s.params = params.String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, p := range [][]byte{text[:64], text, random, text} {
		in := w.in.Load()
		if err := c.Write(ctx, tunnel.MessageBinary, p); err != nil {
			return err
		}
		typ, got, err := c.Read(ctx)
		if err != nil {
			return err
		}
		if typ != tunnel.MessageBinary || !bytes.Equal(got, p) {
			return fmt.Errorf("%s server: %d-byte message came back as %v of %d bytes, different", s.name(), len(p), typ, len(got))
		}
		if wired := w.in.Load() - in; i%2 == 1 && wired >= int64(len(p)) {
			return fmt.Errorf("%s server negotiated %q but echoed %d bytes of text in %d bytes on the wire: not compressed", s.name(), s.params, len(p), wired)
		}
	}
	return nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// roundTrips has each of conns connections send a size-byte message and
// wait for its echo, over and over.
func roundTrips(s *server, conns, size int, warmup, dur time.Duration) (result, error) {
	return measure(s, conns, warmup, dur, dialConfig{}, func(c *tunnel.Conn, n *counter, done <-chan struct{}) error {
		ctx := context.Background()
		p := randomBytes(size)
		buf := make([]byte, 0, size)
		for {
			select {
			case <-done:
				return nil
			default:
			}
			if err := c.Write(ctx, tunnel.MessageBinary, p); err != nil {
				return err
			}
			_, got, err := c.ReadAppend(ctx, buf[:0])
			if err != nil {
				return err
			}
			if !bytes.Equal(got, p) {
				return fmt.Errorf("echo of %d bytes came back as %d bytes, different", size, len(got))
			}
			buf = got
			n.bytes.Add(int64(len(got)))
			n.msgs.Add(1)
		}
	})
}

// stream has each of conns connections write size-byte random messages as
// fast as it can, with up to window of them not yet echoed, while a second
// goroutine reads the echoes, checking their length and ends.
func stream(s *server, conns, size, window int, warmup, dur time.Duration) (result, error) {
	return measure(s, conns, warmup, dur, dialConfig{}, func(c *tunnel.Conn, n *counter, done <-chan struct{}) error {
		return streamConn(c, n, done, [][]byte{randomBytes(size)}, window, false)
	})
}

// streamDeflate is stream with compression offered (dc), cycling through
// msgs and checking every echo byte for byte, and counting bytes on the
// wire.
func streamDeflate(s *server, conns int, msgs [][]byte, window int, warmup, dur time.Duration, dc dialConfig) (result, error) {
	var w wire
	dc.wire = &w
	return measure(s, conns, warmup, dur, dc, func(c *tunnel.Conn, n *counter, done <-chan struct{}) error {
		return streamConn(c, n, done, msgs, window, true)
	})
}

// streamConn is one connection's streaming: a writer goroutine sends msgs
// in turn, up to window ahead of the echoes this goroutine reads.
func streamConn(c *tunnel.Conn, n *counter, done <-chan struct{}, msgs [][]byte, window int, full bool) error {
	ctx := context.Background()
	slots := make(chan struct{}, window)
	werr := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case slots <- struct{}{}:
			case <-done:
				werr <- nil
				return
			}
			p := msgs[i%len(msgs)]
			if err := c.Write(ctx, tunnel.MessageBinary, p); err != nil {
				werr <- err
				return
			}
			n.sent.Add(int64(len(p)))
		}
	}()
	buf := make([]byte, 0, len(msgs[0]))
	for i := 0; ; i++ {
		_, got, err := c.ReadAppend(ctx, buf[:0])
		if err != nil {
			select {
			case <-done:
				return nil
			default:
			}
			select {
			case werr := <-werr:
				if werr != nil {
					return werr
				}
			default:
			}
			return err
		}
		p := msgs[i%len(msgs)]
		if len(got) != len(p) || got[0] != p[0] || got[len(p)-1] != p[len(p)-1] || full && !bytes.Equal(got, p) {
			return fmt.Errorf("echo of %d bytes came back as %d bytes, different", len(p), len(got))
		}
		buf = got
		<-slots
		n.bytes.Add(int64(len(got)))
		n.msgs.Add(1)
	}
}

// snapshot is the state of the counters and both processes at one instant.
type snapshot struct {
	at              time.Time
	msgs, bytes     int64
	sent            int64
	wireIn, wireOut int64
	srvCPU, cliCU   float64
	st              serverStats
}

func take(s *server, ctrs []counter, w *wire) (snapshot, error) {
	var sn snapshot
	sn.at = time.Now()
	for i := range ctrs {
		sn.msgs += ctrs[i].msgs.Load()
		sn.bytes += ctrs[i].bytes.Load()
		sn.sent += ctrs[i].sent.Load()
	}
	if w != nil {
		sn.wireIn, sn.wireOut = w.in.Load(), w.out.Load()
	}
	var err error
	if sn.srvCPU, err = cpuSeconds(s.pid()); err != nil {
		return sn, err
	}
	sn.cliCU = selfCPU()
	sn.st, err = s.ask("stats")
	return sn, err
}

// measure opens conns connections, runs work on each, and measures the
// window that starts warmup after the start and lasts dur. Then it closes
// the connections and waits until the server has let them all go.
func measure(s *server, conns int, warmup, dur time.Duration, dc dialConfig, work func(*tunnel.Conn, *counter, <-chan struct{}) error) (result, error) {
	cs, err := dialN(s, conns, dc)
	if err != nil {
		return result{}, err
	}
	ctrs := make([]counter, conns)
	done := make(chan struct{})
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			if err := work(c, &ctrs[i], done); err != nil {
				select {
				case <-done: // errors after the stop are the stop itself
				default:
					failed.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	stop := func() {
		close(done)
		closeAll(cs)
		wg.Wait()
	}
	time.Sleep(warmup)
	a, err := take(s, ctrs, dc.wire)
	if err != nil {
		stop()
		return result{}, err
	}
	time.Sleep(dur)
	b, err := take(s, ctrs, dc.wire)
	stop()
	if err != nil {
		return result{}, err
	}
	if p := failed.Load(); p != nil {
		return result{}, fmt.Errorf("%s server, %d connections: %w", s.name(), conns, *p)
	}
	if b.msgs == a.msgs {
		return result{}, errors.New(s.name() + " server: no message echoed in the window")
	}
	if err := s.waitConns(0, 10*time.Second); err != nil {
		return result{}, err
	}
	return result{
		kind:    s.kind,
		conns:   conns,
		secs:    b.at.Sub(a.at).Seconds(),
		msgs:    b.msgs - a.msgs,
		bytes:   b.bytes - a.bytes,
		srvCPU:  b.srvCPU - a.srvCPU,
		cliCPU:  b.cliCU - a.cliCU,
		mallocs: b.st.Mallocs - a.st.Mallocs,
		alloced: b.st.TotalAlloc - a.st.TotalAlloc,
		deflate: dc.deflate,
		sent:    b.sent - a.sent,
		wireIn:  b.wireIn - a.wireIn,
		wireOut: b.wireOut - a.wireOut,
	}, nil
}

// idle measures what n idle connections cost the server: its RSS and Go
// memory after a forced GC (which also returns free pages to the OS),
// before and after the connections are open. A server asked for a memory
// profile writes its live heap at that point.
func idle(s *server, n int) (idleResult, error) {
	st0, err := s.ask("gc")
	if err != nil {
		return idleResult{}, err
	}
	rss0, _, err := memBytes(s.pid())
	if err != nil {
		return idleResult{}, err
	}
	cs, err := dialN(s, n, dialConfig{})
	if err != nil {
		return idleResult{}, err
	}
	defer func() {
		closeAll(cs)
		s.waitConns(0, 10*time.Second)
	}()
	if err := s.waitConns(int64(n), 10*time.Second); err != nil {
		return idleResult{}, err
	}
	st1, err := s.ask("heap")
	if err != nil {
		return idleResult{}, err
	}
	rss1, _, err := memBytes(s.pid())
	if err != nil {
		return idleResult{}, err
	}
	return idleResult{
		kind:       s.kind,
		n:          n,
		rssPer:     float64(rss1-rss0) / float64(n),
		heapPer:    (float64(st1.HeapInuse) - float64(st0.HeapInuse)) / float64(n),
		stackPer:   (float64(st1.StackInuse) - float64(st0.StackInuse)) / float64(n),
		goroutines: float64(st1.Goroutines-st0.Goroutines) / float64(n),
	}, nil
}
