//go:build !js

// Exposing is for native clients only: a page cannot accept connections,
// so the browser client does not expose.

package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/ferrygw/ferry/tunnel"
	"github.com/hashicorp/yamux"
)

// ExposeOptions tune Session.Expose.
type ExposeOptions struct {
	// ID names this exposer to the gateway (1 to 255 bytes). A new
	// registration with the ID of one the gateway holds for the same
	// credential replaces it at once: that is how a restarted exposer
	// takes its name back. Default: derived from the host name and the
	// service, so one exposer per host and service.
	ID string
	// OnStatus, when set, is told of the registration's state: Connected
	// when registered, Reconnecting with why it was lost.
	OnStatus func(Status)
}

// ErrReplaced is the error of a Listener whose registration another with
// the same exposer ID replaced: an exposer started again elsewhere.
var ErrReplaced = errors.New("client: another exposer with this ID took over the registration")

// Listener is an exposed service: the gateway's streams to it, from
// every client that dials it. It holds a tunnel of its own (so it pins no
// stream of the Session's) and keeps its registration across reconnects:
// after a lost tunnel, or a gateway that drains, it registers again on a
// new tunnel before Accept yields again, and streams already accepted
// carry on.
type Listener struct {
	s        *Session
	service  string
	id       string
	onStatus func(Status)

	incoming chan *ExposedConn
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{} // closed when run has returned
	ready    chan error    // the first registration's result

	mu  sync.Mutex
	err error // why the Listener ended, once it has
}

// Expose registers service, which the gateway's config must list with
// backend = "expose" and the Session's credential must be allowed to
// expose, and returns its Listener once the gateway has accepted the
// registration. The first refusal is returned as a *tunnel.OpenError;
// later ones end the Listener (Accept returns them) when retrying cannot
// help, and are retried with backoff otherwise.
//
// Accept returns each incoming stream as an *ExposedConn: the caller
// connects it to the local service (and only that: the gateway names only
// the exposed service, and the Listener refuses any other name itself),
// then calls Confirm, or Refuse with why.
func (s *Session) Expose(ctx context.Context, service string, opts *ExposeOptions) (*Listener, error) {
	if _, err := tunnel.AppendRegisterRequest(nil, service, "x"); err != nil {
		return nil, err
	}
	l := &Listener{s: s, service: service, incoming: make(chan *ExposedConn), done: make(chan struct{}), ready: make(chan error, 1)}
	if opts != nil {
		l.id, l.onStatus = opts.ID, opts.OnStatus
	}
	if l.id == "" {
		host, _ := os.Hostname()
		sum := sha256.Sum256([]byte(host + "\x00" + service))
		l.id = host + "-" + hex.EncodeToString(sum[:4])
		if len(l.id) > 255 {
			l.id = l.id[len(l.id)-255:]
		}
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	go l.run()
	select {
	case err := <-l.ready:
		if err != nil {
			l.cancel()
			<-l.done
			return nil, err
		}
		return l, nil
	case <-ctx.Done():
		l.cancel()
		<-l.done
		return nil, ctx.Err()
	}
}

// ID is the exposer ID the Listener registers with.
func (l *Listener) ID() string { return l.id }

// Accept waits for the next stream to the exposed service.
func (l *Listener) Accept() (net.Conn, error) { return l.AcceptExposed(context.Background()) }

// AcceptExposed is Accept with a context and the concrete type.
func (l *Listener) AcceptExposed(ctx context.Context) (*ExposedConn, error) {
	select {
	case c := <-l.incoming:
		return c, nil
	case <-l.done:
		return nil, l.failure()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *Listener) failure() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		return net.ErrClosed
	}
	return l.err
}

// Close withdraws the registration and ends the Listener's tunnel; streams
// it accepted end with it.
func (l *Listener) Close() error {
	l.cancel()
	<-l.done
	return nil
}

// Addr names the exposed service.
func (l *Listener) Addr() net.Addr { return exposeAddr(l.service) }

type exposeAddr string

func (exposeAddr) Network() string  { return "ferry-expose" }
func (a exposeAddr) String() string { return string(a) }

// run keeps the registration up until Close or a refusal that retrying
// cannot lift.
func (l *Listener) run() {
	defer close(l.done)
	first := true
	backoff := l.s.opts.MinBackoff
	var tunnels sync.WaitGroup // older tunnels, finishing their streams
	defer tunnels.Wait()
	for {
		lk, err := l.s.dialLink(l.ctx)
		registered := false
		if err == nil {
			var again bool
			again, registered, err = l.serve(lk.mux, lk.nc, first, &tunnels)
			if err == nil && again {
				first = false
				backoff = l.s.opts.MinBackoff // drained: register elsewhere at once
				continue
			}
		}
		var oe *tunnel.OpenError
		var p interface{ Permanent() bool }
		switch {
		case l.ctx.Err() != nil:
			l.end(net.ErrClosed)
			return
		case first && !registered:
			l.ready <- err
			return
		case errors.Is(err, ErrReplaced),
			errors.As(err, &oe) && (oe.Status == tunnel.OpenForbidden || oe.Status == tunnel.OpenUnknownService),
			errors.As(err, &p) && p.Permanent():
			l.end(err)
			return
		}
		wait := time.Duration(rand.Int64N(int64(backoff)) + 1)
		l.status(Status{State: Reconnecting, Err: err})
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-l.ctx.Done():
			t.Stop()
			l.end(net.ErrClosed)
			return
		}
		if registered {
			first = false
			backoff = l.s.opts.MinBackoff
		} else {
			backoff = min(backoff*2, l.s.opts.MaxBackoff)
		}
	}
}

func (l *Listener) status(st Status) {
	if l.onStatus != nil {
		l.onStatus(st)
	}
}

func (l *Listener) end(err error) {
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
}

// serve registers on a fresh tunnel and hands its incoming streams to
// Accept until the registration ends. again reports a withdrawal that
// asks for a registration elsewhere (the gateway drains); the tunnel is
// then kept, in tunnels, until its streams end.
func (l *Listener) serve(mux *yamux.Session, nc net.Conn, first bool, tunnels *sync.WaitGroup) (again, registered bool, err error) {
	keep := false
	defer func() {
		if !keep {
			endTunnel(nc, uint16(tunnel.StatusNormalClosure), "")
			mux.Close()
		}
	}()
	reg, err := mux.OpenStream()
	if err != nil {
		return false, false, fmt.Errorf("client: expose %s: %w", l.service, err)
	}
	req, err := tunnel.AppendRegisterRequest(nil, l.service, l.id)
	if err != nil {
		return false, false, err
	}
	_ = reg.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := reg.Write(req); err != nil {
		return false, false, fmt.Errorf("client: expose %s: %w", l.service, err)
	}
	status, msg, err := tunnel.ReadOpenResponse(reg)
	if err != nil {
		return false, false, fmt.Errorf("client: expose %s: no answer to the registration: %w", l.service, err)
	}
	_ = reg.SetDeadline(time.Time{})
	if status != tunnel.OpenOK {
		return false, false, &tunnel.OpenError{Service: l.service, Status: status, Message: msg}
	}
	if first {
		l.ready <- nil
	}
	l.status(Status{State: Connected})
	// Close ends the tunnel, which ends the registration and its streams.
	stop := context.AfterFunc(l.ctx, func() {
		endTunnel(nc, uint16(tunnel.StatusNormalClosure), "")
		mux.Close()
	})
	defer stop()

	// Streams from the gateway: accepted by a loop that never blocks on
	// anything else, since yamux acknowledges a stream only on Accept.
	accepted := make(chan struct{})
	var streams sync.WaitGroup
	go func() {
		defer close(accepted)
		for {
			st, err := mux.AcceptStream()
			if err != nil {
				return
			}
			streams.Add(1)
			go func() {
				defer streams.Done()
				l.handle(st, nc)
			}()
		}
	}()
	// The registration lives until the gateway withdraws it (one more
	// open response says why) or the tunnel ends.
	wstatus, wmsg, werr := tunnel.ReadOpenResponse(reg)
	switch {
	case l.ctx.Err() != nil:
		return false, true, l.ctx.Err()
	case werr != nil:
		return false, true, fmt.Errorf("client: expose %s: tunnel lost: %w", l.service, tunnelEnded(nc))
	case wstatus == tunnel.OpenLimit:
		return false, true, fmt.Errorf("%w (%s)", ErrReplaced, wmsg)
	case wstatus == tunnel.OpenUnavailable:
		// The gateway drains: register on a new tunnel now, and let this
		// one carry its streams to their end.
		keep = true
		tunnels.Add(1)
		go func() {
			defer tunnels.Done()
			_ = reg.Close()
			select {
			case <-mux.CloseChan():
			case <-l.ctx.Done():
				endTunnel(nc, uint16(tunnel.StatusNormalClosure), "")
				mux.Close()
			}
			<-accepted
			streams.Wait()
		}()
		return true, true, nil
	default:
		return false, true, &tunnel.OpenError{Service: l.service, Status: wstatus, Message: wmsg}
	}
}

// handle reads the gateway's open request on st and passes the stream to
// Accept, or refuses a name other than the exposed service.
func (l *Listener) handle(st *yamux.Stream, nc net.Conn) {
	_ = st.SetReadDeadline(time.Now().Add(30 * time.Second))
	name, err := tunnel.ReadOpenRequest(st)
	_ = st.SetReadDeadline(time.Time{})
	if err != nil {
		_ = st.Close()
		return
	}
	c := &ExposedConn{st: st, service: name, reset: resetVia(nc, st.StreamID())}
	if name != l.service {
		_ = c.Refuse(tunnel.OpenUnknownService, fmt.Sprintf("this exposer exposes only %s", l.service))
		return
	}
	select {
	case l.incoming <- c:
	case <-l.ctx.Done():
		_ = c.Refuse(tunnel.OpenUnavailable, "the exposer is closing")
	}
}

// ExposedConn is a stream from the gateway to an exposed service. Until
// Confirm (or the first Read or Write, which confirm) or Refuse, the
// dialer waits for the exposer's answer.
type ExposedConn struct {
	st       *yamux.Stream
	service  string
	reset    func() // resets the stream on both sides (nil: the tunnel cannot)
	once     sync.Once
	answered error
}

// Confirm tells the dialer its stream is connected.
func (c *ExposedConn) Confirm() error {
	c.once.Do(func() {
		_, c.answered = c.st.Write(tunnel.AppendOpenResponse(nil, tunnel.OpenOK, ""))
	})
	return c.answered
}

// Refuse tells the dialer why its stream cannot be connected (status 3
// refused, 4 timeout, 6 unreachable...) and closes the stream.
func (c *ExposedConn) Refuse(status tunnel.OpenStatus, msg string) error {
	refused := false
	c.once.Do(func() {
		refused = true
		_, c.answered = c.st.Write(tunnel.AppendOpenResponse(nil, status, msg))
		if c.answered == nil {
			c.answered = &tunnel.OpenError{Service: c.service, Status: status, Message: msg}
		}
	})
	if !refused {
		return errors.New("client: the stream was already answered")
	}
	_ = c.st.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(c.st, 1<<20))
	return nil
}

func (c *ExposedConn) Read(p []byte) (int, error) {
	if err := c.Confirm(); err != nil {
		return 0, err
	}
	return tunnel.Stream{Stream: c.st}.Read(p)
}

func (c *ExposedConn) Write(p []byte) (int, error) {
	if err := c.Confirm(); err != nil {
		return 0, err
	}
	return c.st.Write(p)
}

// CloseWrite ends the sending half: the dialer reads end of file.
func (c *ExposedConn) CloseWrite() error { return c.st.Close() }

// Close ends the stream both ways.
func (c *ExposedConn) Close() error {
	_ = c.Confirm()
	err := c.st.Close()
	_ = c.st.SetReadDeadline(time.Now())
	return err
}

// Abort ends the stream at once, both ways, with a reset when the tunnel
// can send one (else it is Close): the dialer reads an error, never a
// clean end of file. tunnel.Pipe calls it when a copy failed, as when the
// local service reset its connection in the middle of a transfer.
func (c *ExposedConn) Abort() {
	if c.reset == nil {
		_ = c.Close()
		return
	}
	_ = c.Confirm()
	c.reset()
	_ = c.st.SetReadDeadline(time.Now())
}

// Service is the exposed service the stream is for.
func (c *ExposedConn) Service() string { return c.service }

func (c *ExposedConn) LocalAddr() net.Addr                { return c.st.LocalAddr() }
func (c *ExposedConn) RemoteAddr() net.Addr               { return c.st.RemoteAddr() }
func (c *ExposedConn) SetDeadline(t time.Time) error      { return c.st.SetDeadline(t) }
func (c *ExposedConn) SetReadDeadline(t time.Time) error  { return c.st.SetReadDeadline(t) }
func (c *ExposedConn) SetWriteDeadline(t time.Time) error { return c.st.SetWriteDeadline(t) }

// ServeTCP connects every stream the Listener accepts to the TCP address
// addr (and only that), until the Listener ends, and returns why it did.
// A local connection that is refused or times out (within dialTimeout) is
// refused to the dialer with status 3 or 4 and the reason. onStream, when
// set, is told of each stream as it ends: its error, nil after a clean
// end.
func (l *Listener) ServeTCP(addr string, dialTimeout time.Duration, onStream func(err error)) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.AcceptExposed(context.Background())
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := serveLocal(c, addr, dialTimeout)
			if onStream != nil {
				onStream(err)
			}
		}()
	}
}

// serveLocal dials addr for c and pipes the two until both ends are done.
func serveLocal(c *ExposedConn, addr string, dialTimeout time.Duration) error {
	d := net.Dialer{Timeout: dialTimeout}
	local, err := d.Dial("tcp", addr)
	if err != nil {
		status := tunnel.OpenUnreachable
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			status = tunnel.OpenTimeout
		case errors.Is(err, syscall.ECONNREFUSED):
			status = tunnel.OpenRefused
		}
		_ = c.Refuse(status, fmt.Sprintf("the exposer cannot reach %s: %v", c.service, errors.Unwrap(err)))
		return err
	}
	if err := c.Confirm(); err != nil {
		local.Close()
		return err
	}
	return tunnel.Pipe(c, local)
}
