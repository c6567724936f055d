package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/ferrygw/ferry/tunnel"
)

// TunnelClosedError is how a tunnel that was up ended: the WebSocket close
// code and reason, sent by the gateway (Remote) or decided here (a
// keepalive timeout, a protocol violation by the gateway, a lost
// connection: 1006).
type TunnelClosedError struct {
	Code   uint16
	Reason string
	Remote bool
}

func (e *TunnelClosedError) Error() string {
	who := "the gateway closed the tunnel"
	if !e.Remote {
		who = "tunnel lost"
	}
	if e.Reason == "" {
		return "client: " + who + " (" + strconv.Itoa(int(e.Code)) + ")"
	}
	return "client: " + who + ": " + e.Reason + " (" + strconv.Itoa(int(e.Code)) + ")"
}

// tunnelEnded says why the tunnel over nc ended, as far as nc knows.
func tunnelEnded(nc TunnelConn) error {
	if r, ok := nc.(interface{ Err() error }); ok {
		var ce *tunnel.CloseError
		if errors.As(r.Err(), &ce) {
			return &TunnelClosedError{Code: uint16(ce.Code), Reason: ce.Reason, Remote: !ce.Local}
		}
	}
	return errors.New("client: tunnel closed")
}

// endTunnel closes the tunnel over nc with code and reason, when nc can
// say one (the native WebSocket), else just closes it.
func endTunnel(nc TunnelConn, code uint16, reason string) {
	if c, ok := nc.(interface {
		CloseTunnel(code uint16, reason string)
	}); ok {
		c.CloseTunnel(code, reason)
		return
	}
	_ = nc.Close()
}

func (s *Session) status(st Status) {
	if s.opts.OnStatus != nil {
		s.opts.OnStatus(st)
	}
}

// leftAtOnce reports whether why, the end of a tunnel, is the gateway
// asking its clients to move: a GoAway, or a close with 1001 "going
// away" (a drain or a shutdown). The next tunnel is then dialed without
// a backoff wait, which, behind a load balancer, reaches another gateway
// while this one finishes its streams.
func leftAtOnce(why error) bool {
	var te *TunnelClosedError
	return errors.Is(why, ErrGatewayDraining) ||
		errors.As(why, &te) && te.Remote && te.Code == uint16(tunnel.StatusGoingAway)
}

// supervise watches the current link l and, when it dies or the gateway
// starts draining it, dials the next one, until the Session is closed. It
// is the only goroutine that makes a link current, so one reconnection
// runs at a time.
//
// A draining link is handed to drain and no longer concerns supervise:
// its later close (by the gateway with 1001 after its last stream, or by
// drain with 1000) is not a failure of the link that replaced it.
//
// A nil l (Options.RetryAtStart) starts with the first dial.
func (s *Session) supervise(ctx context.Context, l *link) {
	defer s.wg.Done()
	if l == nil {
		if l = s.reconnect(ctx, true, nil); l == nil {
			return
		}
	}
	for {
		var why error
		select {
		case <-l.mux.CloseChan():
			// yamux ended on its own when the tunnel did not: the
			// gateway broke the multiplexing protocol.
			endTunnel(l.nc, uint16(tunnel.StatusProtocolError), "yamux session ended")
			why = tunnelEnded(l.nc)
		case <-l.goAway:
			why = ErrGatewayDraining
			s.wg.Add(1)
			go s.drain(ctx, l)
		case <-ctx.Done():
			l.close()
			return
		}
		// A gateway that sends away a tunnel dialed at once and never
		// used gets the backoff: no loop of handshakes with a gateway
		// that keeps draining.
		eager := leftAtOnce(why) && (!l.eager || l.wasUsed())
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		s.retireLocked(l)
		s.lastErr = why
		s.mu.Unlock()
		if l = s.reconnect(ctx, eager, why); l == nil {
			return
		}
	}
}

// reconnect dials links, with jittered exponential backoff (none before
// the first attempt when eager), until one is up, which it makes current
// and returns; or until the Session is closed or a permanent refusal ends
// it, and then returns nil. Before each wait it reports Reconnecting with
// why (the end of the last tunnel, then each failed attempt) and the
// wait; a nil why (the first dial of RetryAtStart) is not reported.
// Each attempt's phases are bounded by Options.Timeout.
func (s *Session) reconnect(ctx context.Context, eager bool, why error) *link {
	backoff := s.opts.MinBackoff
	for attempt := 0; ; attempt++ {
		var wait time.Duration
		if attempt > 0 || !eager {
			// Full jitter: wait a random time up to backoff.
			wait = time.Duration(rand.Int64N(int64(backoff)) + 1)
			backoff = min(backoff*2, s.opts.MaxBackoff)
		}
		if why != nil {
			s.status(Status{State: Reconnecting, Err: why, Delay: wait})
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil
			}
		}
		l, err := s.dialLink(ctx)
		if err == nil {
			l.eager = eager && attempt == 0
			s.setCurrent(l)
			return l
		}
		if ctx.Err() != nil {
			return nil
		}
		var p interface{ Permanent() bool }
		if errors.As(err, &p) && p.Permanent() {
			// The gateway refused the credential (revoked, expired):
			// retrying cannot help. Dials fail from now on.
			s.mu.Lock()
			s.failed = err
			if s.cur == nil {
				close(s.ready)
			}
			s.mu.Unlock()
			s.status(Status{State: Closed, Err: err})
			return nil
		}
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
		why = err
	}
}

// drain keeps a link the gateway sent a GoAway on until its last stream
// ends, then closes it with 1000; or until the gateway closes it first,
// or the Session is closed.
func (s *Session) drain(ctx context.Context, l *link) {
	defer s.wg.Done()
	select {
	case <-l.idle:
		l.close()
	case <-l.mux.CloseChan():
		// The gateway closed it (1001 after its last stream): nothing to
		// report, the Session has moved on. When yamux ended on its own,
		// the tunnel gets the code that says so.
		endTunnel(l.nc, uint16(tunnel.StatusProtocolError), "yamux session ended")
	case <-ctx.Done():
		l.close()
	}
}
