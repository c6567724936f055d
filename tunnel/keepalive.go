//go:build !js

package tunnel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrKeepAlive is returned by KeepAlive when the peer stopped answering.
var ErrKeepAlive = errors.New("tunnel: keepalive timeout")

// KeepAliveReason is the close reason sent with StatusInternalError when
// the peer stopped answering pings.
const KeepAliveReason = "keepalive timeout"

// KeepAlive checks that the peer is alive until the connection ends,
// which is when it returns (nil, or ErrKeepAlive after it closed a dead
// connection).
//
// Whenever interval passes with nothing read from the peer, it sends a
// WebSocket ping, which goes out between two frames rather than behind
// queued data and which every peer answers (RFC 6455 section 5.5.2), and
// the pings alone keep proxies that cut idle connections at bay. A peer
// is dead when its pong has not come for another interval and, in that
// time, nothing was read from it and no message of ours went out: a slow
// link whose frames still move is alive however long a pong takes. A dead
// connection is closed with 1011 and KeepAliveReason.
func (s *MuxConn) KeepAlive(interval time.Duration) error {
	dead := make(chan struct{}, 1)
	stop := s.StartKeepAlive(interval, func() { dead <- struct{}{} })
	defer stop()
	<-s.c.closed
	select {
	case <-dead: // told before the keepalive closed the connection
		return ErrKeepAlive
	default:
		return nil
	}
}

// StartKeepAlive is KeepAlive without a goroutine of its own: a timer
// makes each check, and a ping waits in the timer's goroutine, so an idle
// connection costs no goroutine stack (the gateway runs one per session).
// dead, if not nil, is called when the peer is found dead, just before
// the connection is closed. It stops at the first check after the
// connection ended, or when stop is called (which the owner does as it
// lets go of the connection, so that the timer does not hold it until
// then).
func (s *MuxConn) StartKeepAlive(interval time.Duration, dead func()) (stop func()) {
	if interval <= 0 {
		return func() {}
	}
	k := &keepAliveTimer{s: s, interval: interval, dead: dead, seen: s.reads.Load()}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.t = time.AfterFunc(interval, k.tick)
	return func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		k.stopped = true
		k.t.Stop()
	}
}

type keepAliveTimer struct {
	s        *MuxConn
	interval time.Duration
	dead     func()
	seen     uint64 // the peer's reads at the last check; only tick uses it

	mu      sync.Mutex
	t       *time.Timer
	stopped bool
}

// tick is one check, interval after the last: when nothing was read from
// the peer since then, it pings and waits up to interval for the pong or
// any progress, and closes the connection with 1011 when none came.
func (k *keepAliveTimer) tick() {
	s := k.s
	if isDone(s.c.closed) {
		return
	}
	if r := s.reads.Load(); r != k.seen {
		k.seen = r // the peer spoke: it is alive
	} else {
		mark := s.reads.Load() + s.writes.Load()
		ctx, cancel := context.WithTimeout(context.Background(), k.interval)
		err := s.c.Ping(ctx)
		cancel()
		if isDone(s.c.closed) {
			return
		}
		if err != nil && s.reads.Load()+s.writes.Load() == mark {
			if k.dead != nil {
				k.dead()
			}
			reason := fmt.Sprintf("%s: no answer for %s", KeepAliveReason, 2*k.interval)
			// A dead peer will not answer the close frame: give it a
			// second, not the whole close timeout.
			s.c.CloseWithin(StatusInternalError, reason, time.Second)
			return
		}
		k.seen = s.reads.Load()
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.stopped {
		k.t.Reset(k.interval)
	}
}

// CloseWithin is Close bounded by d: it runs the closing handshake for at
// most d, then drops the connection.
func (c *Conn) CloseWithin(code StatusCode, reason string, d time.Duration) {
	done := make(chan struct{})
	go func() {
		c.Close(code, reason)
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		c.CloseNow()
		<-done
	}
}
