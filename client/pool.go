package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/ferrygw/ferry/tunnel"
)

// A Session's streams live on its current link and, when that link's
// streams are at the gateway's limit (the Ferry-Limits count, or an open
// answered with status 5), on extra links: more tunnels to the same URL,
// dialed one at a time as Dials need them and closed again once they have
// been idle for extraIdle. Extra links are not redialed when they die: the
// current link is the one the Session keeps up. While it is down, new
// streams go to an extra link that is still up and has room.

// extraIdle is how long an extra link may stay without streams before it
// is closed.
var extraIdle = time.Second

// maxLimitRetries bounds how often one Dial moves to another link because
// the gateway answered status 5 (or reset the open) on the one it tried.
const maxLimitRetries = 4

// maxBusyRetries bounds how often one Dial retries an open the gateway
// answered with status 9 (busy), after a jittered wait that doubles from
// busyBackoff; busy is gateway-wide, so no other link is tried for it.
const (
	maxBusyRetries = 3
	busyBackoff    = 100 * time.Millisecond
)

// SessionLimitError is a gateway that refused one more tunnel for a
// Session whose streams were at the limit of its tunnels: a limit that no
// new session can lift (429: max_sessions_per_ip or _per_token; 503: the
// gateway is full). Options.OnLimit is told of it once.
type SessionLimitError struct {
	Tunnels int // the tunnels the Session had open
	Err     error
}

func (e *SessionLimitError) Error() string {
	return "client: the gateway refused another tunnel past " + strconv.Itoa(e.Tunnels) + " open (their streams are at its per-session limit): " + errText(e.Err)
}
func (e *SessionLimitError) Unwrap() error { return e.Err }

// Stats are a Session's counts at one moment.
type Stats struct {
	Tunnels int // links open for new streams: the current one and extras
	Streams int // streams open or being opened, on every link
	// BytesIn and BytesOut count the payload read from and written to
	// the Session's streams since it was made.
	BytesIn, BytesOut uint64
}

// Stats returns the Session's counts.
func (s *Session) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{BytesIn: s.bytes.in.Load(), BytesOut: s.bytes.out.Load()}
	if s.cur != nil {
		st.Tunnels++
		st.Streams += s.cur.count()
	}
	for _, l := range s.extra {
		st.Tunnels++
		st.Streams += l.count()
	}
	return st
}

// pick returns a link with room for one more stream, its use counted,
// waiting for a reconnection up to ctx and dialing an extra link when
// every link is full. While the current link is down, an extra link that
// is still up and has room takes the stream rather than have it wait for
// the reconnection. When no extra link can be had, it returns the current
// link anyway, so that the gateway's answer (status 5) says why.
func (s *Session) pick(ctx context.Context) (*link, error) {
	for {
		if l := s.extraWhileDown(); l != nil {
			return l, nil
		}
		cur, err := s.current(ctx)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		if s.cur != cur || !cur.usable() {
			// Dead or draining since: current waits for the next one.
			s.mu.Unlock()
			continue
		}
		if cur.tryAcquire() {
			s.mu.Unlock()
			return cur, nil
		}
		for _, l := range s.extra {
			if l.usable() && l.tryAcquire() {
				s.mu.Unlock()
				return l, nil
			}
		}
		if s.extraDialing != nil {
			wait := s.extraDialing
			s.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, &NoTunnelError{Err: ctx.Err()}
			case <-s.done:
				return nil, ErrClosed
			}
		}
		if time.Now().Before(s.extraRefusedUntil) || 1+len(s.extra) >= s.maxTunnels() {
			// The gateway refused the last extra link a moment ago, or
			// the Session holds as many as it may: let the gateway
			// answer this open itself.
			ok := cur.acquire()
			s.mu.Unlock()
			if !ok {
				continue
			}
			return cur, nil
		}
		done := make(chan struct{})
		s.extraDialing = done
		s.mu.Unlock()
		l, err := s.dialLink(ctx)
		s.mu.Lock()
		s.extraDialing = nil
		close(done)
		if err == nil && s.closed {
			s.mu.Unlock()
			l.close()
			return nil, ErrClosed
		}
		if err == nil {
			s.extraFailures = 0
			s.extra = append(s.extra, l)
			s.wg.Add(1)
			go s.watchExtra(l)
			s.mu.Unlock()
			continue
		}
		if ctx.Err() != nil {
			s.mu.Unlock()
			return nil, &NoTunnelError{Err: ctx.Err(), Last: err}
		}
		// Back off, doubling, before the next extra tunnel: a gateway at
		// its session limit is not asked again for every open.
		s.extraRefusedUntil = time.Now().Add(min(s.opts.MinBackoff<<min(s.extraFailures, 16), s.opts.MaxBackoff))
		s.extraFailures++
		var re *RefusedError
		report := false
		if errors.As(err, &re) && (re.Status == 429 || re.Status == 503) /* too many requests, unavailable; net/http would weigh on the browser build */ && !s.limitReported {
			s.limitReported, report = true, true
		}
		n := 1 + len(s.extra)
		s.mu.Unlock()
		if report && s.opts.OnLimit != nil {
			s.opts.OnLimit(&SessionLimitError{Tunnels: n, Err: err})
		}
	}
}

// extraWhileDown returns an extra link with room, its use counted, when
// the current link is gone or unusable; nil otherwise.
func (s *Session) extraWhileDown() *link {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.failed != nil || s.cur != nil && s.cur.usable() {
		return nil
	}
	for _, l := range s.extra {
		if l.usable() && l.tryAcquire() {
			return l
		}
	}
	return nil
}

// watchExtra closes an extra link once it has been idle for extraIdle,
// forgets it when it dies, and drains it when the gateway sends a GoAway,
// until the Session is closed.
func (s *Session) watchExtra(l *link) {
	defer s.wg.Done()
	var idle <-chan time.Time
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		select {
		case <-l.idleTick:
			if t != nil {
				t.Stop()
			}
			t = time.NewTimer(extraIdle)
			idle = t.C
			continue
		case <-idle:
			s.mu.Lock()
			if !l.idleNow() {
				s.mu.Unlock()
				idle = nil
				continue
			}
			s.dropExtraLocked(l)
			s.mu.Unlock()
			l.close()
		case <-l.goAway:
			s.mu.Lock()
			s.dropExtraLocked(l)
			s.mu.Unlock()
			s.wg.Add(1)
			go s.drain(s.runCtx, l)
		case <-l.mux.CloseChan():
			s.mu.Lock()
			s.dropExtraLocked(l)
			s.mu.Unlock()
			endTunnel(l.nc, uint16(tunnel.StatusProtocolError), "yamux session ended")
		case <-s.runCtx.Done():
			l.close()
		}
		return
	}
}

// dropExtraLocked forgets the extra link l; s.mu is held.
func (s *Session) dropExtraLocked(l *link) {
	for i, e := range s.extra {
		if e == l {
			s.extra = append(s.extra[:i], s.extra[i+1:]...)
			break
		}
	}
	if len(s.extra) == 0 {
		s.limitReported = false
	}
}

// busyWait waits before retry n of an open answered with status 9.
func busyWait(ctx context.Context, n int) error {
	d := busyBackoff << n
	t := time.NewTimer(time.Duration(rand.Int64N(int64(d))) + d/2)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// maxTunnels is Options.MaxTunnels with its default.
func (s *Session) maxTunnels() int {
	if s.opts.MaxTunnels <= 0 {
		return 16
	}
	return s.opts.MaxTunnels
}
