package framing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// framed is what the tests need of both framings, with string messages.
type framed interface {
	send(ctx context.Context, msg string) error
	recv(ctx context.Context) (string, error)
	Close() error
	CloseWrite() error
	Conn() net.Conn
	Max() int
}

type linesFramed struct{ *LinesConn }

func (l linesFramed) send(ctx context.Context, msg string) error { return l.Send(ctx, msg) }
func (l linesFramed) recv(ctx context.Context) (string, error)   { return l.Recv(ctx) }

type u32Framed struct{ *U32BEConn }

func (u u32Framed) send(ctx context.Context, msg string) error { return u.Send(ctx, []byte(msg)) }
func (u u32Framed) recv(ctx context.Context) (string, error) {
	msg, err := u.Recv(ctx)
	return string(msg), err
}

// framings make both kinds of connection and their messages' encoding.
var framings = []struct {
	name   string
	new    func(c net.Conn, max int) framed
	encode func(msgs ...string) []byte
}{
	{"lines", func(c net.Conn, max int) framed { return linesFramed{NewLines(c, max)} }, func(msgs ...string) []byte {
		var b []byte
		for _, m := range msgs {
			b = append(b, m...)
			b = append(b, '\n')
		}
		return b
	}},
	{"u32be", func(c net.Conn, max int) framed { return u32Framed{NewU32BE(c, max)} }, u32},
}

// TestRecvInterrupted ends the context of a Recv waiting in the middle of
// a message, by cancelling it and then by a deadline: Recv returns ctx's
// error, not io.EOF, and the next Recv gets the whole message once the
// rest is sent.
func TestRecvInterrupted(t *testing.T) {
	t.Parallel()
	for _, f := range framings {
		enc := f.encode("hello, world")
		for _, tr := range transports {
			for _, split := range []int{0, 2, 4, 9, len(enc) - 1} {
				t.Run(fmt.Sprintf("%s/%s/%d", f.name, tr.name, split), func(t *testing.T) {
					t.Parallel()
					a, b := tr.pair(t)
					cc := newCountConn(a)
					c := f.new(cc, 100)
					rest := make(chan struct{})
					wrote := make(chan error, 1)
					go func() {
						if _, err := b.Write(enc[:split]); err != nil {
							wrote <- err
							return
						}
						<-rest
						_, err := b.Write(enc[split:])
						wrote <- err
					}()

					ctx, cancel := context.WithCancel(context.Background())
					ended := make(chan error, 1)
					go func() {
						_, err := c.recv(ctx)
						ended <- err
					}()
					cc.waitRead(t, int64(split))
					cancel()
					if err := <-ended; !errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) {
						t.Fatalf("cancelled Recv: %v", err)
					}

					ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
					defer cancel()
					if _, err := c.recv(ctx); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) {
						t.Fatalf("Recv past its deadline: %v", err)
					}

					close(rest)
					ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					msg, err := c.recv(ctx)
					if err != nil || msg != "hello, world" {
						t.Errorf("next Recv: %q, %v", msg, err)
					}
					if err := <-wrote; err != nil {
						t.Fatal(err)
					}
				})
			}
		}
	}
}

// TestRecvInterruptedRepeatedly interrupts one message many times.
func TestRecvInterruptedRepeatedly(t *testing.T) {
	t.Parallel()
	for _, f := range framings {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			a, b := pipePair(t)
			cc := newCountConn(a)
			c := f.new(cc, 100)
			msg := strings.Repeat("0123456789", 5)
			enc := f.encode(msg)
			for i := range enc[:len(enc)-1] {
				ctx, cancel := context.WithCancel(context.Background())
				ended := make(chan error, 1)
				go func() {
					_, err := c.recv(ctx)
					ended <- err
				}()
				if _, err := b.Write(enc[i : i+1]); err != nil {
					t.Fatal(err)
				}
				cc.waitRead(t, int64(i+1))
				cancel()
				if err := <-ended; !errors.Is(err, context.Canceled) {
					t.Fatalf("byte %d: %v", i, err)
				}
			}
			go func() { _, _ = b.Write(enc[len(enc)-1:]) }()
			if got, err := c.recv(context.Background()); err != nil || got != msg {
				t.Errorf("Recv: %q, %v", got, err)
			}
		})
	}
}

// TestSendInterrupted ends the context of a Send blocked on a peer that
// does not read: before any byte is written, the stream stays usable;
// after some are, Sends are broken.
func TestSendInterrupted(t *testing.T) {
	t.Parallel()
	for _, f := range framings {
		for _, size := range []int{10, 100000} {
			for _, written := range []int{0, 2, 7} {
				name := fmt.Sprintf("%s/%d/%d", f.name, size, written)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					a, b := pipePair(t)
					hc := &hookConn{Conn: a, writing: make(chan struct{}, 1)}
					c := f.new(hc, 1<<20)
					msg := strings.Repeat("m", size)
					ctx, cancel := context.WithCancel(context.Background())
					ended := make(chan error, 1)
					go func() { ended <- c.send(ctx, msg) }()
					<-hc.writing
					if _, err := io.ReadFull(b, make([]byte, written)); err != nil {
						t.Fatal(err)
					}
					cancel()
					err := <-ended
					if !errors.Is(err, context.Canceled) {
						t.Fatalf("interrupted Send: %v", err)
					}
					if broken := errors.Is(err, ErrBroken); broken != (written > 0) {
						t.Fatalf("interrupted Send after %d bytes: %v", written, err)
					}
					wait := readAll(b)
					err = c.send(context.Background(), "next")
					c.Close()
					got := wait()
					if written == 0 {
						if err != nil || string(got) != string(f.encode("next")) {
							t.Errorf("next Send: %v; peer got %q", err, got)
						}
						return
					}
					if !errors.Is(err, ErrBroken) || errors.Is(err, context.Canceled) {
						t.Errorf("Send after a broken one: %v", err)
					}
					if len(got) != 0 {
						t.Errorf("peer got %q after the break", got)
					}
				})
			}
		}
	}
}

// TestLockGivesUp checks that a Recv or Send waiting for another gives up
// when its context ends or the connection is closed.
func TestLockGivesUp(t *testing.T) {
	t.Parallel()
	for _, f := range framings {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			a, b := pipePair(t)
			hc := &hookConn{Conn: a, reading: make(chan struct{}, 1), writing: make(chan struct{}, 1)}
			c := f.new(hc, 100)
			_ = b // the peer never reads nor writes
			recvEnded := make(chan error, 1)
			go func() {
				_, err := c.recv(context.Background())
				recvEnded <- err
			}()
			sendEnded := make(chan error, 1)
			go func() { sendEnded <- c.send(context.Background(), "x") }()
			<-hc.reading // the Recv holds the receive lock
			<-hc.writing // the Send holds the send lock
			ctx, cancel := context.WithCancel(context.Background())
			waiting := make(chan error, 2)
			go func() { _, err := c.recv(ctx); waiting <- err }()
			go func() { waiting <- c.send(ctx, "y") }()
			cancel()
			for range 2 {
				if err := <-waiting; !errors.Is(err, context.Canceled) {
					t.Errorf("waiting with ended context: %v", err)
				}
			}
			go func() { _, err := c.recv(context.Background()); waiting <- err }()
			go func() { waiting <- c.send(context.Background(), "z") }()
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			for _, ch := range []chan error{recvEnded, sendEnded, waiting, waiting} {
				if err := <-ch; err == nil || !strings.HasPrefix(err.Error(), "framing: ") {
					t.Errorf("after Close: %v", err)
				}
			}
		})
	}
}

func TestCloseWrite(t *testing.T) {
	t.Parallel()
	for _, f := range framings {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			a, b := tcpPair(t)
			c, peer := f.new(a, 100), f.new(b, 100)
			if c.Conn() != a || c.Max() != 100 {
				t.Errorf("Conn %v, Max %d", c.Conn(), c.Max())
			}
			ctx := context.Background()
			if err := c.send(ctx, "last"); err != nil {
				t.Fatal(err)
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if err := c.send(ctx, "more"); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Send after CloseWrite: %v", err)
			}
			if msg, err := peer.recv(ctx); msg != "last" || err != nil {
				t.Errorf("peer Recv: %q, %v", msg, err)
			}
			if _, err := peer.recv(ctx); err != io.EOF {
				t.Errorf("peer Recv: %v, want io.EOF", err)
			}
			if err := peer.send(ctx, "reply"); err != nil {
				t.Fatal(err)
			}
			if msg, err := c.recv(ctx); msg != "reply" || err != nil {
				t.Errorf("Recv after CloseWrite: %q, %v", msg, err)
			}
			if err := peer.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := c.recv(ctx); err != io.EOF {
				t.Errorf("Recv: %v, want io.EOF", err)
			}
			first := c.Close()
			if first != nil {
				t.Errorf("Close: %v", first)
			}
			if err := c.Close(); err != first {
				t.Errorf("second Close: %v", err)
			}
			if _, err := c.recv(ctx); err != io.EOF {
				t.Errorf("Recv after io.EOF and Close: %v", err)
			}
			if err := c.CloseWrite(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("CloseWrite after Close: %v", err)
			}

			p, _ := pipePair(t)
			if err := f.new(p, 1).CloseWrite(); !errors.Is(err, errors.ErrUnsupported) {
				t.Errorf("CloseWrite on a pipe: %v", err)
			}
		})
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	for _, f := range framings {
		a, _ := pipePair(t)
		c := f.new(a, 10)
		c.Close()
		if _, err := c.recv(context.Background()); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s: Recv after Close: %v", f.name, err)
		}
		if err := c.send(context.Background(), "x"); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s: Send after Close: %v", f.name, err)
		}
	}
}

func TestNewPanics(t *testing.T) {
	t.Parallel()
	var big uint64 = math.MaxUint32 + 1
	cases := []struct {
		name  string
		new   func()
		panic bool
	}{
		{"lines 0", func() { NewLines(nil, 0) }, true},
		{"lines -1", func() { NewLines(nil, -1) }, true},
		{"u32be 0", func() { NewU32BE(nil, 0) }, true},
		{"u32be 1<<32", func() { NewU32BE(nil, int(big)) }, strconv.IntSize == 64},
		{"lines 1", func() { a, _ := pipePair(t); NewLines(a, 1) }, false},
		{"u32be 1", func() { a, _ := pipePair(t); NewU32BE(a, 1) }, false},
		{"u32be 1<<32-1", func() { a, _ := pipePair(t); NewU32BE(a, math.MaxUint32) }, false},
	}
	if strconv.IntSize < 64 {
		cases = cases[:len(cases)-1]
	}
	for _, tc := range cases {
		func() {
			defer func() {
				r := recover()
				if (r != nil) != tc.panic {
					t.Errorf("%s: panic %v, want one: %v", tc.name, r, tc.panic)
				}
				if s, ok := r.(string); r != nil && (!ok || !strings.HasPrefix(s, "framing: ")) {
					t.Errorf("%s: panic %v", tc.name, r)
				}
			}()
			tc.new()
		}()
	}
}

// TestConcurrent runs senders and receivers on both ends of a TCP
// connection at once: every message arrives whole and once, and, with one
// receiver, in order from each sender.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	const (
		senders   = 4
		perSender = 150
		max       = 40000
	)
	// size is the size of sender g's message i: up to max, so that u32be
	// sends some with two Writes.
	size := func(g, i int) int { return (g*7919 + i*104729) % (max - 20) }
	message := func(g, i int) string {
		head := fmt.Sprintf("%d:%d:", g, i)
		return head + strings.Repeat(string(rune('a'+g)), size(g, i))
	}
	for _, f := range framings {
		for _, receivers := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/%d", f.name, receivers), func(t *testing.T) {
				t.Parallel()
				a, b := tcpPair(t)
				ends := []framed{f.new(a, max), f.new(b, max)}
				var wg sync.WaitGroup
				ctx := context.Background()
				for _, c := range ends {
					// The senders, then CloseWrite.
					wg.Go(func() {
						var senderWG sync.WaitGroup
						for g := range senders {
							senderWG.Go(func() {
								for i := range perSender {
									if err := c.send(ctx, message(g, i)); err != nil {
										t.Errorf("Send: %v", err)
										return
									}
								}
							})
						}
						senderWG.Wait()
						if err := c.CloseWrite(); err != nil {
							t.Errorf("CloseWrite: %v", err)
						}
					})
					// The receivers, until io.EOF.
					var mu sync.Mutex
					next := make([]int, senders)
					seen := make(map[string]bool)
					var recvWG sync.WaitGroup
					for range receivers {
						recvWG.Go(func() {
							for {
								msg, err := c.recv(ctx)
								if err == io.EOF {
									return
								}
								if err != nil {
									t.Errorf("Recv: %v", err)
									return
								}
								var g, i int
								if _, err := fmt.Sscanf(msg, "%d:%d:", &g, &i); err != nil || g < 0 || g >= senders || msg != message(g, i) {
									t.Errorf("bad message %.40q (%d bytes)", msg, len(msg))
									return
								}
								mu.Lock()
								if seen[msg] {
									t.Errorf("message %d:%d twice", g, i)
								}
								seen[msg] = true
								if receivers == 1 {
									if i != next[g] {
										t.Errorf("message %d:%d, want %d:%d", g, i, g, next[g])
									}
									next[g] = i + 1
								}
								mu.Unlock()
							}
						})
					}
					wg.Go(func() {
						recvWG.Wait()
						if len(seen) != senders*perSender {
							t.Errorf("received %d messages, want %d", len(seen), senders*perSender)
						}
					})
				}
				wg.Wait()
			})
		}
	}
}
