package client

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/ferrygw/ferry/internal/errwrap"
	"github.com/ferrygw/ferry/tunnel"
)

// Options configures a Session. The zero value (or nil) connects with no
// credential, compression on, and reconnects from 250 ms up to 30 s apart.
type Options struct {
	// Token is the credential, sent as "Authorization: Bearer" by the
	// native dialer.
	Token string
	// Header holds extra handshake headers (for auth proxies), keyed like
	// an http.Header (which can be assigned to it). The native dialer sends
	// them; a browser cannot set WebSocket headers.
	Header map[string][]string
	// Dialer yields the byte stream the yamux session runs on, for a
	// tunnel URL. Nil uses the native WebSocket (not in js/wasm builds).
	// A conn with a method FerryLimits() string tells the Session the
	// gateway's Ferry-Limits header (docs/PROTOCOL.md).
	Dialer func(ctx context.Context, url string) (TunnelConn, error)
	// Native holds settings of the default native dialer (TLS, proxy,
	// compression); ignored when Dialer is set.
	Native NativeOptions
	// Keepalive is how long the tunnel may be silent before the client
	// pings the gateway; a gateway that then stays silent as long again,
	// with nothing moving either way, is dead (default 25 s). The native
	// dialer's tunnel does it with WebSocket pings (tunnel.MuxConn's
	// KeepAlive); a browser cannot ping, and relies on the gateway's.
	Keepalive time.Duration
	// MinBackoff and MaxBackoff bound the jittered wait between
	// reconnection attempts (defaults 250 ms and 30 s). A gateway that
	// drains (a yamux GoAway, or a close with 1001 "going away") is left
	// at once: the first attempt then comes without a wait.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds each phase of connecting (default DefaultTimeout):
	// with the native dialer TCP connect, proxy CONNECT, TLS and HTTP
	// upgrade, each on its own; a custom Dialer's call as a whole; and the
	// first yamux round trip on the new tunnel. A phase that takes longer
	// fails the attempt with a *TimeoutError naming it.
	Timeout time.Duration
	// Wait bounds how long Forward lets a local connection wait for a
	// tunnel (and the gateway's answer to its open) before closing it
	// (default 30 s).
	Wait time.Duration
	// RetryAtStart makes Connect return at once, with the first tunnel
	// still to come: the Session dials it in the background with backoff,
	// as after a failure, and Dials wait for it, each up to its context.
	// A permanent refusal ends the Session (a Closed status with the
	// error). Without it, Connect returns the first attempt's failure.
	RetryAtStart bool
	// OnStatus, when set, is told of connection changes; it must not block.
	OnStatus func(Status)
	// OnLimit, when set, is told once (until the extra tunnels are gone)
	// that the gateway refused one more tunnel for streams past the
	// per-session limit; Dials past the limit then get status 5. It must
	// not block.
	OnLimit func(*SessionLimitError)
	// MaxTunnels bounds the tunnels the Session holds at once, the extra
	// ones it dials for streams past the gateway's per-session limit
	// included (default 16). 1 never dials an extra tunnel: Dials past
	// the limit then get the gateway's status 5.
	MaxTunnels int
}

// State is a Session's connection state.
type State int

// Session states.
const (
	Connected    State = iota // the tunnel is up
	Reconnecting              // the tunnel died or is draining; a new one is being dialed
	Closed                    // Close was called
)

func (s State) String() string {
	switch s {
	case Connected:
		return "connected"
	case Reconnecting:
		return "reconnecting"
	case Closed:
		return "closed"
	}
	return "unknown"
}

// Status is a change of a Session's connection: its new state and, for
// Reconnecting, the error that ended the previous tunnel (a
// *TunnelClosedError carrying the close code and reason, when the tunnel
// knows them), ErrGatewayDraining when the gateway sent a GoAway, or the
// last attempt; for Closed, nil after Close, or the
// refusal that ended reconnection (an error with a Permanent method that
// returns true, such as a RefusedError with status 401 or 403).
//
// Delay, for Reconnecting, is how long the Session waits before its next
// attempt (0: at once).
type Status struct {
	State State
	Err   error
	Delay time.Duration
}

// RefusedError is a handshake the gateway answered with an HTTP error.
type RefusedError struct {
	Status int
	Err    error
}

func (e *RefusedError) Error() string { return e.Err.Error() }

// Permanent reports whether retrying cannot help: the credential was
// refused (401) or the request is forbidden (403).
func (e *RefusedError) Permanent() bool { return e.Status == 401 || e.Status == 403 }
func (e *RefusedError) Unwrap() error   { return e.Err }

// ErrClosed is returned by a Session that was closed.
var ErrClosed = errors.New("client: session closed")

// NoTunnelError is a Dial that gave up waiting for a tunnel: its context
// ended (Err) while the Session was reconnecting; Last is the last
// attempt's failure, if any.
type NoTunnelError struct {
	Err  error
	Last error
}

func (e *NoTunnelError) Error() string {
	if e.Last != nil {
		return "client: waiting for the tunnel: " + errText(e.Err) + " (last error: " + e.Last.Error() + ")"
	}
	return "client: waiting for the tunnel: " + errText(e.Err)
}
func (e *NoTunnelError) Unwrap() error { return e.Err }

// ErrGatewayDraining is the Err of the Reconnecting status of a Session
// whose gateway sent a yamux GoAway: it takes no new streams on this
// tunnel, and those already open carry on until they end.
var ErrGatewayDraining = errors.New("client: the gateway is draining")

// Session is a connection to one gateway, kept up across failures. It is
// safe for concurrent use.
//
// When the gateway drains (it sends a yamux GoAway, then closes idle
// tunnels with 1001 and the others when their last stream ends), the
// Session dials a new tunnel to the same URL at once, which behind a load
// balancer may reach another gateway, and opens new streams there; the
// old tunnel carries its open streams to their end and is then closed
// with 1000. One reconnection runs at a time; Dials wait for it.
type Session struct {
	url    string
	opts   Options
	phased bool // the native dialer, which times each phase itself

	mu      sync.Mutex
	cur     *link         // where Dial opens streams; nil while reconnecting
	ready   chan struct{} // closed when cur is set; replaced when it goes
	closed  bool
	lastErr error
	failed  error // a permanent refusal ended reconnection

	extra             []*link       // links for streams past cur's limit (pool.go)
	extraDialing      chan struct{} // closed when the extra link being dialed is up or failed
	extraRefusedUntil time.Time     // no extra link is dialed before then
	extraFailures     int           // extra dials failed in a row
	limitReported     bool          // OnLimit was told
	runCtx            context.Context

	bytes counters

	done   chan struct{}
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// Connect dials the gateway at tunnelURL (ws:// or wss://, path included)
// and returns a Session once the first tunnel is up. The first attempt's
// failure is returned as is, so a caller can tell a user at once that the
// gateway is unreachable or refused; later failures are retried.
func Connect(ctx context.Context, tunnelURL string, opts *Options) (*Session, error) {
	s := &Session{url: tunnelURL, done: make(chan struct{}), ready: make(chan struct{})}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.Keepalive <= 0 {
		s.opts.Keepalive = 25 * time.Second
	}
	if s.opts.MinBackoff <= 0 {
		s.opts.MinBackoff = 250 * time.Millisecond
	}
	if s.opts.MaxBackoff <= 0 {
		s.opts.MaxBackoff = 30 * time.Second
	}
	if s.opts.MaxBackoff < s.opts.MinBackoff {
		s.opts.MaxBackoff = s.opts.MinBackoff
	}
	if s.opts.Timeout <= 0 {
		s.opts.Timeout = DefaultTimeout
	}
	if s.opts.Wait <= 0 {
		s.opts.Wait = 30 * time.Second
	}
	if s.opts.Dialer == nil {
		d, err := nativeDialer(&s.opts)
		if err != nil {
			return nil, err
		}
		s.opts.Dialer = d
		s.phased = true
	}
	var l *link
	if !s.opts.RetryAtStart {
		var err error
		if l, err = s.dialLink(ctx); err != nil {
			return nil, err
		}
		s.setCurrent(l)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.runCtx = runCtx
	s.wg.Add(1)
	go s.supervise(runCtx, l)
	return s, nil
}

// dialLink dials a tunnel, starts its yamux session and waits for the
// first round trip on it, each bounded by Options.Timeout.
func (s *Session) dialLink(ctx context.Context) (*link, error) {
	var nc TunnelConn
	var err error
	if s.phased {
		nc, err = s.opts.Dialer(ctx, s.url)
	} else {
		pt := newPhaseTimer(ctx, s.opts.Timeout)
		pt.begin("dial")
		nc, err = s.opts.Dialer(pt.ctx, s.url)
		pt.stop()
		if te := pt.timedOut(); err != nil && te != nil && ctx.Err() == nil {
			err = te
		}
	}
	if err != nil {
		return nil, err
	}
	l := newLink(nc)
	mux, err := newMux(&goAwayWatch{TunnelConn: nc, onGoAway: l.markGoAway, fins: &l.fins})
	if err != nil {
		nc.Close()
		return nil, errwrap.Wrap(err, "client: yamux")
	}
	l.mux = mux
	if err := s.firstRoundTrip(ctx, l); err != nil {
		return nil, err
	}
	if fl, ok := nc.(interface{ FerryLimits() string }); ok {
		l.maxStreams = parseLimits(fl.FerryLimits())
		l.cap = l.maxStreams
	}
	if ka, ok := nc.(interface{ KeepAlive(time.Duration) error }); ok {
		go func() { _ = ka.KeepAlive(s.opts.Keepalive) }()
	}
	return l, nil
}

// firstRoundTrip pings the gateway over l's yamux session: a gateway that
// upgraded the WebSocket but runs no yamux on it (or a proxy that holds
// the bytes) fails the attempt within Options.Timeout.
func (s *Session) firstRoundTrip(ctx context.Context, l *link) error {
	const phase = "first yamux round trip"
	done := make(chan error, 1)
	go func() {
		_, err := l.mux.Ping()
		done <- err
	}()
	t := time.NewTimer(s.opts.Timeout)
	defer t.Stop()
	var err error
	select {
	case err = <-done:
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errMuxTimeout):
			err = &TimeoutError{Phase: phase, After: s.opts.Timeout}
		case l.mux.IsClosed():
			err = errwrap.Wrap(tunnelEnded(l.nc), "client: "+phase)
		default:
			err = errwrap.Wrap(err, "client: "+phase)
		}
	case <-t.C:
		err = &TimeoutError{Phase: phase, After: s.opts.Timeout}
	case <-ctx.Done():
		err = errwrap.Wrap(ctx.Err(), "client: "+phase)
	}
	// The gateway is not answering: no close handshake to wait for. The
	// Ping returns when the session closes.
	_ = l.nc.SetDeadline(time.Unix(1, 0))
	l.close()
	return err
}

// setCurrent makes l the link new streams open on.
func (s *Session) setCurrent(l *link) {
	s.mu.Lock()
	s.cur = l
	close(s.ready)
	s.mu.Unlock()
	s.status(Status{State: Connected})
}

// retireLocked stops new streams from opening on l, if it is current;
// s.mu is held. It reports whether l was current.
func (s *Session) retireLocked(l *link) bool {
	if s.cur != l {
		return false
	}
	s.cur = nil
	s.ready = make(chan struct{})
	return true
}

// current returns the link to open streams on, waiting for a reconnection
// up to ctx.
func (s *Session) current(ctx context.Context) (*link, error) {
	for {
		s.mu.Lock()
		l := s.cur
		if l != nil && !l.usable() {
			// Dead or draining: the supervisor is, or will be, at work.
			s.retireLocked(l)
			l = nil
		}
		ready, closed, failed := s.ready, s.closed, s.failed
		s.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if failed != nil {
			return nil, errwrap.Wrap(failed, "client: the gateway refused the tunnel")
		}
		if l != nil {
			return l, nil
		}
		select {
		case <-ready:
		case <-s.done:
			return nil, ErrClosed
		case <-ctx.Done():
			s.mu.Lock()
			lastErr := s.lastErr
			s.mu.Unlock()
			return nil, &NoTunnelError{Err: ctx.Err(), Last: lastErr}
		}
	}
}

// maxOpenRetries bounds how often one Dial moves on to a newer tunnel
// because the one it tried died or began to drain before the gateway
// answered its open.
const maxOpenRetries = 3

// Dial opens a stream to service through the gateway and returns it once
// the gateway has connected to the backend. A refusal is a
// *tunnel.OpenError with the gateway's status and message. The returned
// conn also has CloseWrite, which ends the stream's sending half (the
// backend sees end of file) while reading goes on.
//
// A Dial that finds the tunnel draining, or that loses its open to the
// gateway's GoAway or to a tunnel that ends before the answer, waits for
// the next tunnel and opens the stream there, within ctx: no bytes of the
// stream were sent, so the open is safe to repeat.
func (s *Session) Dial(ctx context.Context, service string) (*Conn, error) {
	req, err := tunnel.AppendOpenRequest(nil, service)
	if err != nil {
		return nil, err
	}
	limitRetries, busyRetries := 0, 0
	for retries := 0; ; {
		l, err := s.pick(ctx)
		if err != nil {
			return nil, err
		}
		st, err := l.mux.OpenStream()
		if err != nil {
			l.release()
			if errors.Is(err, errMuxGoAway) {
				l.markGoAway()
			}
			if !l.usable() && retries < maxOpenRetries {
				retries++
				continue
			}
			return nil, errwrap.Wrap(err, "client: open stream")
		}
		id := st.StreamID()
		c, err := openStream(ctx, st, service, req, func() { l.fins.forget(id); l.release() }, &s.bytes)
		if c != nil {
			c.finSeen = func() bool { return l.fins.seen(id) }
			c.reset = l.resetter(st)
		}
		if err == nil {
			l.noteOpened()
			return c, nil
		}
		l.release()
		if ctx.Err() == nil && !answered(err) && !l.usable() && retries < maxOpenRetries {
			retries++
			continue
		}
		var oe *tunnel.OpenError
		isOE := errors.As(err, &oe)
		if (isOE && oe.Status == tunnel.OpenLimit || errors.Is(err, errMuxReset)) && limitRetries < maxLimitRetries && ctx.Err() == nil {
			// This link's streams are at the gateway's limit: another
			// link (an extra one, dialed if need be) may have room.
			l.markFull()
			limitRetries++
			continue
		}
		if isOE && oe.Status == tunnel.OpenBusy && busyRetries < maxBusyRetries {
			// The gateway's memory budget: wait, on the same link; a new
			// tunnel would only cost it more.
			if busyWait(ctx, busyRetries) == nil {
				busyRetries++
				continue
			}
		}
		if errors.Is(err, errMuxReset) {
			// The gateway resets opens past the refusals it answers at
			// once (docs/PROTOCOL.md §3): a per-session limit.
			return nil, &tunnel.OpenError{Service: service, Status: tunnel.OpenLimit,
				Message: "the gateway reset the stream: too many opens of this session are being refused at once"}
		}
		return nil, err
	}
}

// answered reports whether err is the gateway's answer to an open, other
// than "shutting down" (which a draining gateway may give to an open that
// crossed its GoAway).
func answered(err error) bool {
	var oe *tunnel.OpenError
	return errors.As(err, &oe) && oe.Status != tunnel.OpenUnavailable
}

// openStream writes the open request on st and reads the answer; end is
// the returned Conn's end of use.
func openStream(ctx context.Context, st *muxStream, service string, req []byte, end func(), bytes *counters) (*Conn, error) {
	// yamux's Close only sends FIN and leaves reads blocked: a deadline in
	// the past is what wakes the read of the answer.
	stop := context.AfterFunc(ctx, func() { _ = st.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := st.Write(req); err != nil {
		st.Close()
		return nil, errwrap.Wrap(err, "client: open "+service)
	}
	status, msg, err := tunnel.ReadOpenResponse(st)
	if err != nil {
		st.Close()
		if ctx.Err() != nil {
			return nil, errwrap.Wrap(ctx.Err(), "client: open "+service)
		}
		if errors.Is(err, io.EOF) {
			return nil, errors.New("client: open " + service + ": the gateway closed the stream without an answer")
		}
		return nil, errwrap.Wrap(err, "client: open "+service)
	}
	if !stop() {
		// ctx ended as the answer came: the deadline is set, the stream
		// is unusable.
		st.Close()
		return nil, errwrap.Wrap(ctx.Err(), "client: open "+service)
	}
	if status != tunnel.OpenOK {
		st.Close()
		return nil, &tunnel.OpenError{Service: service, Status: status, Message: msg}
	}
	return newConn(st, service, end, bytes), nil
}

// Close ends the Session and every stream on it, on every tunnel.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	l := s.cur
	s.mu.Unlock()
	// The extra links are closed by their watchers, on s.cancel.
	close(s.done)
	if l != nil {
		l.close()
	}
	if s.cancel != nil {
		s.cancel() // the supervisor ends draining links too
	}
	s.wg.Wait()
	s.status(Status{State: Closed})
	return nil
}

// Done returns a channel closed when the Session is closed.
func (s *Session) Done() <-chan struct{} { return s.done }
