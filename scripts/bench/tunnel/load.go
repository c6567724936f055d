//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"
)

// pool holds the bulk payload: 16 chunks of chunkSize bytes, cycled. The
// first byte of every chunk is 0 (the sink's "more" flag); last is a chunk
// whose first byte is 1 ("send the count").
type pool struct {
	chunks [][]byte
	last   []byte
}

// newPool makes random bytes (incompressible: the cheap entropy check of
// Ferry's compressor sends them uncompressed) or text (words from a small
// vocabulary in random order: deflate makes it about 3× smaller).
func newPool(kind string) *pool {
	r := rand.New(rand.NewChaCha8([32]byte{'f', 'e', 'r', 'r', 'y'}))
	p := &pool{}
	words := strings.Fields("the gateway tunnel stream session yamux frame window socket backend service client server message " +
		"bytes open close read write error timeout token config ferry chisel relay json id name value 0 1 2 3 4 5 6 7 8 9 { } : , \"")
	for range 16 {
		b := make([]byte, 0, chunkSize+16)
		if kind == "text" {
			for len(b) < chunkSize {
				b = append(b, words[r.IntN(len(words))]...)
				b = append(b, ' ')
			}
			b = b[:chunkSize]
		} else {
			b = b[:chunkSize]
			for i := 0; i < chunkSize; i += 8 {
				binary.LittleEndian.PutUint64(b[i:], r.Uint64())
			}
		}
		b[0] = 0
		p.chunks = append(p.chunks, b)
	}
	p.last = append([]byte(nil), p.chunks[0]...)
	p.last[0] = 1
	return p
}

func (p *pool) chunk(i int) []byte { return p.chunks[i%len(p.chunks)] }

// measurement is one timed load against one setup.
type measurement struct {
	secs  float64 // wall time
	bytes int64   // payload bytes delivered (bulk)
	ops   int64   // round trips
}

func dialMode(addr string, mode byte) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{mode}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// upload streams chunks to the sink on n connections for dur, then sends
// each a last chunk and waits for the sink's count, which must equal what
// was sent. The time runs from the first write to the last count, so it
// includes draining whatever the setup had buffered: it is the rate of
// bytes delivered to the backend.
func upload(addr string, p *pool, n int, dur time.Duration) (measurement, error) {
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := dialMode(addr, modeSink)
		if err != nil {
			closeConns(conns)
			return measurement{}, err
		}
		conns[i] = c
	}
	defer closeConns(conns)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int64
		end   time.Time
		first error
	)
	start := time.Now()
	deadline := start.Add(dur)
	for i, c := range conns {
		wg.Go(func() {
			sent, err := func() (int64, error) {
				var sent int64
				for k := i * 5; time.Now().Before(deadline); k++ {
					if _, err := c.Write(p.chunk(k)); err != nil {
						return sent, err
					}
					sent += chunkSize
				}
				if _, err := c.Write(p.last); err != nil {
					return sent, err
				}
				sent += chunkSize
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				var b [8]byte
				if _, err := io.ReadFull(c, b[:]); err != nil {
					return sent, fmt.Errorf("waiting for the sink's count: %w", err)
				}
				if got := int64(binary.BigEndian.Uint64(b[:])); got != sent {
					return sent, fmt.Errorf("the sink received %d bytes, %d were sent", got, sent)
				}
				return sent, nil
			}()
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			total += sent
			if now.After(end) {
				end = now
			}
			if err != nil && first == nil {
				first = err
			}
		})
	}
	wg.Wait()
	if first != nil {
		return measurement{}, first
	}
	return measurement{secs: end.Sub(start).Seconds(), bytes: total}, nil
}

// download reads what the source sends on n connections for dur.
func download(addr string, n int, dur time.Duration) (measurement, error) {
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := dialMode(addr, modeSource)
		if err != nil {
			closeConns(conns)
			return measurement{}, err
		}
		conns[i] = c
	}
	defer closeConns(conns)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int64
		first error
	)
	start := time.Now()
	deadline := start.Add(dur)
	for _, c := range conns {
		c.SetReadDeadline(deadline)
		wg.Go(func() {
			buf := make([]byte, chunkSize)
			var got int64
			var err error
			for {
				var k int
				k, err = c.Read(buf)
				got += int64(k)
				if err != nil {
					break
				}
			}
			if isTimeout(err) {
				err = nil
			}
			mu.Lock()
			defer mu.Unlock()
			total += got
			if err != nil && first == nil {
				first = err
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if first != nil {
		return measurement{}, first
	}
	return measurement{secs: secs, bytes: total}, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// roundTrips sends size bytes on one connection, waits for their echo, and
// again, for warmup and then dur; it counts the round trips in dur. It
// calls mark when the timed window starts.
func roundTrips(addr string, size int, warmup, dur time.Duration, mark func()) (measurement, error) {
	c, err := dialMode(addr, modeEcho)
	if err != nil {
		return measurement{}, err
	}
	defer c.Close()
	msg := make([]byte, size)
	for i := range msg {
		msg[i] = byte(i*7 + 1)
	}
	back := make([]byte, size)
	one := func() error {
		if _, err := c.Write(msg); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, back); err != nil {
			return err
		}
		if !bytes.Equal(back, msg) {
			return errors.New("the echo differs from the message")
		}
		return nil
	}
	c.SetDeadline(time.Now().Add(warmup + dur + 30*time.Second))
	for t := time.Now().Add(warmup); time.Now().Before(t); {
		if err := one(); err != nil {
			return measurement{}, err
		}
	}
	var n int64
	mark()
	start := time.Now()
	deadline := start.Add(dur)
	for ; time.Now().Before(deadline); n++ {
		if err := one(); err != nil {
			return measurement{}, err
		}
	}
	return measurement{secs: time.Since(start).Seconds(), ops: n}, nil
}

// check waits until a setup carries an echo and a sink count correctly.
func check(addr string, p *pool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = checkOnce(addr, p); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

func checkOnce(addr string, p *pool) error {
	c, err := dialMode(addr, modeEcho)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	msg := p.chunk(3)[:1000]
	if _, err := c.Write(msg); err != nil {
		return err
	}
	back := make([]byte, len(msg))
	if _, err := io.ReadFull(c, back); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	if !bytes.Equal(back, msg) {
		return errors.New("echo differs")
	}
	s, err := dialMode(addr, modeSink)
	if err != nil {
		return err
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := s.Write(p.chunk(1)); err != nil {
		return err
	}
	if _, err := s.Write(p.last); err != nil {
		return err
	}
	var b [8]byte
	if _, err := io.ReadFull(s, b[:]); err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	if got := binary.BigEndian.Uint64(b[:]); got != 2*chunkSize {
		return fmt.Errorf("sink counted %d bytes, want %d", got, 2*chunkSize)
	}
	return nil
}

func closeConns(cs []net.Conn) {
	for _, c := range cs {
		if c != nil {
			c.Close()
		}
	}
}
