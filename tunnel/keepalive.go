//go:build !js

package tunnel

import (
	"context"
	"errors"
	"fmt"
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
	if interval <= 0 {
		<-s.c.closed
		return nil
	}
	t := time.NewTimer(interval)
	defer t.Stop()
	seen := s.reads.Load()
	for {
		select {
		case <-s.c.closed:
			return nil
		case <-t.C:
		}
		if r := s.reads.Load(); r != seen {
			seen = r // the peer spoke: it is alive
			t.Reset(interval)
			continue
		}
		mark := s.reads.Load() + s.writes.Load()
		ctx, cancel := context.WithTimeout(context.Background(), interval)
		err := s.c.Ping(ctx)
		cancel()
		select {
		case <-s.c.closed:
			return nil
		default:
		}
		if err != nil && s.reads.Load()+s.writes.Load() == mark {
			reason := fmt.Sprintf("%s: no answer for %s", KeepAliveReason, 2*interval)
			// A dead peer will not answer the close frame: give it a
			// second, not the whole close timeout.
			s.c.CloseWithin(StatusInternalError, reason, time.Second)
			return ErrKeepAlive
		}
		seen = s.reads.Load()
		t.Reset(interval)
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
