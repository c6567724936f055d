package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/ferrygw/ferry/tunnel"
	"github.com/hashicorp/yamux"
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
	Dialer func(ctx context.Context, url string) (net.Conn, error)
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
	// reconnection attempts (defaults 250 ms and 30 s).
	MinBackoff, MaxBackoff time.Duration
	// OnStatus, when set, is told of connection changes; it must not block.
	OnStatus func(Status)
}

// State is a Session's connection state.
type State int

// Session states.
const (
	Connected    State = iota // the tunnel is up
	Reconnecting              // the tunnel died; a new one is being dialed
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
// knows them) or the last attempt; for Closed, nil after Close, or the
// refusal that ended reconnection (an error with a Permanent method that
// returns true, such as a RefusedError with status 401 or 403).
type Status struct {
	State State
	Err   error
}

// ErrClosed is returned by a Session that was closed.
var ErrClosed = errors.New("client: session closed")

// Session is a connection to one gateway, kept up across failures. It is
// safe for concurrent use.
type Session struct {
	url  string
	opts Options

	mu      sync.Mutex
	mux     *yamux.Session // nil while reconnecting
	nc      net.Conn       // the byte stream mux runs on
	ready   chan struct{}  // closed when mux is set; replaced when it dies
	closed  bool
	lastErr error
	failed  error // a permanent refusal ended reconnection

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
	if s.opts.Dialer == nil {
		d, err := nativeDialer(&s.opts)
		if err != nil {
			return nil, err
		}
		s.opts.Dialer = d
	}
	mux, nc, err := s.dialMux(ctx)
	if err != nil {
		return nil, err
	}
	s.setMux(mux, nc)
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go s.supervise(runCtx, mux)
	return s, nil
}

func (s *Session) dialMux(ctx context.Context) (*yamux.Session, net.Conn, error) {
	nc, err := s.opts.Dialer(ctx, s.url)
	if err != nil {
		return nil, nil, err
	}
	mux, err := yamux.Client(nc, tunnel.MuxConfig(tunnel.DefaultWindow))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("client: yamux: %w", err)
	}
	if ka, ok := nc.(interface{ KeepAlive(time.Duration) error }); ok {
		go func() { _ = ka.KeepAlive(s.opts.Keepalive) }()
	}
	return mux, nc, nil
}

func (s *Session) setMux(mux *yamux.Session, nc net.Conn) {
	s.mu.Lock()
	s.mux, s.nc = mux, nc
	close(s.ready)
	s.mu.Unlock()
	s.status(Status{State: Connected})
}

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
		return fmt.Sprintf("client: %s (%d)", who, e.Code)
	}
	return fmt.Sprintf("client: %s: %s (%d)", who, e.Reason, e.Code)
}

// tunnelEnded says why the tunnel over nc ended, as far as nc knows.
func tunnelEnded(nc net.Conn) error {
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
func endTunnel(nc net.Conn, code uint16, reason string) {
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

// supervise waits for the tunnel to die and dials a new one, with
// jittered exponential backoff, until the Session is closed.
func (s *Session) supervise(ctx context.Context, mux *yamux.Session) {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		nc := s.nc
		s.mu.Unlock()
		select {
		case <-mux.CloseChan():
			// yamux ended on its own when the tunnel did not: the
			// gateway broke the multiplexing protocol.
			endTunnel(nc, uint16(tunnel.StatusProtocolError), "yamux session ended")
		case <-ctx.Done():
			endTunnel(nc, uint16(tunnel.StatusNormalClosure), "")
			mux.Close()
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		s.mux, s.nc = nil, nil
		s.ready = make(chan struct{})
		s.lastErr = tunnelEnded(nc)
		s.mu.Unlock()
		s.status(Status{State: Reconnecting, Err: s.lastErr})
		backoff := s.opts.MinBackoff
		for {
			// Full jitter: wait a random time up to backoff.
			wait := time.Duration(rand.Int64N(int64(backoff)) + 1)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			m, c, err := s.dialMux(dctx)
			cancel()
			if err == nil {
				mux = m
				s.setMux(m, c)
				break
			}
			if ctx.Err() != nil {
				return
			}
			var p interface{ Permanent() bool }
			if errors.As(err, &p) && p.Permanent() {
				// The gateway refused the credential (revoked, expired):
				// retrying cannot help. Dials fail from now on.
				s.mu.Lock()
				s.failed = err
				close(s.ready)
				s.mu.Unlock()
				s.status(Status{State: Closed, Err: err})
				return
			}
			s.mu.Lock()
			s.lastErr = err
			s.mu.Unlock()
			s.status(Status{State: Reconnecting, Err: err})
			backoff = min(backoff*2, s.opts.MaxBackoff)
		}
	}
}

// current returns the live yamux session, waiting for a reconnection up to
// ctx.
func (s *Session) current(ctx context.Context) (*yamux.Session, error) {
	for {
		s.mu.Lock()
		mux, ready, closed, lastErr, failed := s.mux, s.ready, s.closed, s.lastErr, s.failed
		s.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if failed != nil {
			return nil, fmt.Errorf("client: the gateway refused the tunnel: %w", failed)
		}
		if mux != nil && !mux.IsClosed() {
			return mux, nil
		}
		select {
		case <-ready:
		case <-s.done:
			return nil, ErrClosed
		case <-ctx.Done():
			if lastErr != nil {
				return nil, fmt.Errorf("client: waiting for the tunnel: %w (last error: %v)", ctx.Err(), lastErr)
			}
			return nil, fmt.Errorf("client: waiting for the tunnel: %w", ctx.Err())
		}
	}
}

// Dial opens a stream to service through the gateway and returns it once
// the gateway has connected to the backend. A refusal is a
// *tunnel.OpenError with the gateway's status and message. The returned
// conn also has CloseWrite, which ends the stream's sending half (the
// backend sees end of file) while reading goes on.
func (s *Session) Dial(ctx context.Context, service string) (*Conn, error) {
	req, err := tunnel.AppendOpenRequest(nil, service)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		mux, err := s.current(ctx)
		if err != nil {
			return nil, err
		}
		st, err := mux.OpenStream()
		if err != nil {
			if mux.IsClosed() && attempt < 3 {
				continue // the tunnel died under us: wait for the next one
			}
			return nil, fmt.Errorf("client: open stream: %w", err)
		}
		c, err := openStream(ctx, st, service, req)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

func openStream(ctx context.Context, st *yamux.Stream, service string, req []byte) (*Conn, error) {
	// yamux's Close only sends FIN and leaves reads blocked: a deadline in
	// the past is what wakes the read of the answer.
	stop := context.AfterFunc(ctx, func() { _ = st.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := st.Write(req); err != nil {
		st.Close()
		return nil, fmt.Errorf("client: open %s: %w", service, err)
	}
	status, msg, err := tunnel.ReadOpenResponse(st)
	if err != nil {
		st.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("client: open %s: %w", service, ctx.Err())
		}
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("client: open %s: the gateway closed the stream without an answer", service)
		}
		if errors.Is(err, yamux.ErrConnectionReset) {
			// The gateway resets opens past the refusals it answers at
			// once (docs/PROTOCOL.md §3): a per-session limit.
			return nil, &tunnel.OpenError{Service: service, Status: tunnel.OpenLimit,
				Message: "the gateway reset the stream: too many opens of this session are being refused at once"}
		}
		return nil, fmt.Errorf("client: open %s: %w", service, err)
	}
	if !stop() {
		// ctx ended as the answer came: the deadline is set, the stream
		// is unusable.
		st.Close()
		return nil, fmt.Errorf("client: open %s: %w", service, ctx.Err())
	}
	if status != tunnel.OpenOK {
		st.Close()
		return nil, &tunnel.OpenError{Service: service, Status: status, Message: msg}
	}
	return newConn(st, service), nil
}

// Conn is one stream to a service: a net.Conn whose CloseWrite ends the
// sending half (the backend reads end of file while this side can still
// read what it sends back) and whose Read reports ErrTunnelLost when the
// tunnel dies under it (tunnel.Stream).
type Conn struct {
	tunnel.Stream
	service string

	mu      sync.Mutex
	closed  bool
	readers int        // Reads in progress; guarded by mu
	idle    *sync.Cond // signalled when readers drops to 0
}

var _ net.Conn = (*Conn)(nil)

func newConn(st *yamux.Stream, service string) *Conn {
	c := &Conn{Stream: tunnel.Stream{Stream: st}, service: service}
	c.idle = sync.NewCond(&c.mu)
	return c
}

// ErrTunnelLost is returned by a stream's Read in place of end of file
// when the tunnel died before the stream ended.
var ErrTunnelLost = tunnel.ErrTunnelLost

// Read reads from the stream; after Close, and in a Read that Close
// interrupted, it returns net.ErrClosed.
func (c *Conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	c.readers++
	c.mu.Unlock()
	n, err := c.Stream.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readers--; c.readers == 0 {
		c.idle.Broadcast()
	}
	if c.closed {
		return 0, net.ErrClosed
	}
	return n, err
}

// Close closes the stream both ways and makes Reads in progress return.
// yamux has no reset, so Close sends FIN and then reads and drops what
// the backend still sends, for up to 5 seconds in the background, so that
// the gateway is not left blocked on a full window; the gateway ends the
// backend connection when it sees FIN and the backend stops
// (docs/PROTOCOL.md, "Closing a stream").
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	err := c.CloseWrite()
	_ = c.SetReadDeadline(time.Unix(1, 0)) // wakes Reads in progress
	go func() {
		c.mu.Lock()
		for c.readers > 0 {
			c.idle.Wait()
		}
		c.mu.Unlock()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(io.Discard, c.Stream.Stream)
	}()
	return err
}

// Service returns the service this stream reaches.
func (c *Conn) Service() string { return c.service }

// Close ends the Session and every stream on it.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	mux, nc := s.mux, s.nc
	s.mu.Unlock()
	close(s.done)
	if nc != nil {
		endTunnel(nc, uint16(tunnel.StatusNormalClosure), "")
	}
	if s.cancel != nil {
		s.cancel()
	}
	if mux != nil {
		mux.Close()
	}
	s.wg.Wait()
	s.status(Status{State: Closed})
	return nil
}

// Done returns a channel closed when the Session is closed.
func (s *Session) Done() <-chan struct{} { return s.done }
