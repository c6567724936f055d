package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/gateway/config"
	"github.com/ferrygw/ferry/tunnel"
	"github.com/hashicorp/yamux"
)

// exposerOpens bounds the streams the gateway may be opening toward one
// exposer at once: yamux v0.1.2's OpenStream blocks, with no way to give
// up, once 256 of its SYNs are unanswered, so the gateway stays far
// below that and refuses what does not fit.
const exposerOpens = 64

// exposer is one registration: a session that exposes a service.
type exposer struct {
	service string
	key     string // the credential's name and the exposer ID: who may replace it
	id      string
	se      *session
	open    atomic.Int64  // streams through it now: new ones go to the least busy
	opens   chan struct{} // opens in flight (a semaphore of exposerOpens)
	gone    chan struct{} // closed when the registration is withdrawn
	once    sync.Once
	// why is the withdrawal sent to the exposer (docs/PROTOCOL.md §6),
	// set before gone is closed; zero when its stream simply ended.
	why struct {
		status tunnel.OpenStatus
		msg    string
	}
}

// withdraw ends the registration, telling the exposer why.
func (ex *exposer) withdraw(status tunnel.OpenStatus, msg string) {
	ex.once.Do(func() {
		ex.why.status, ex.why.msg = status, msg
		close(ex.gone)
	})
}

// exposerTable holds the registrations by service.
type exposerTable struct {
	mu sync.Mutex
	by map[string][]*exposer
}

// serveRegistration serves a registration stream (docs/PROTOCOL.md §6):
// it checks the request, answers it, and holds the registration for as
// long as the stream stays open.
func (se *session) serveRegistration(st *yamux.Stream, cfg *config.Config, req tunnel.Request) {
	s := se.srv
	refuse := func(status tunnel.OpenStatus, msg string) { se.refuse(st, req.Service, status, msg) }
	svc := cfg.Services[req.Service]
	cred := se.cred.Load()
	switch {
	case svc == nil:
		refuse(tunnel.OpenUnknownService, fmt.Sprintf("no service named %q", req.Service))
		return
	case !svc.Exposed():
		refuse(tunnel.OpenForbidden, fmt.Sprintf("service %s is not exposed by clients: its backend is %s", req.Service, svc.Backend))
		return
	case cred.anonymous():
		refuse(tunnel.OpenForbidden, fmt.Sprintf("exposing %s needs a token that may expose it", req.Service))
		return
	case !cred.exposes(req.Service):
		refuse(tunnel.OpenForbidden, fmt.Sprintf("token %s may not expose %s", cred.name, req.Service))
		return
	}
	ex := &exposer{service: req.Service, key: cred.name + "\x00" + req.ExposerID, id: req.ExposerID, se: se,
		opens: make(chan struct{}, exposerOpens), gone: make(chan struct{})}
	t := &s.exposers
	t.mu.Lock()
	list := t.by[req.Service]
	var replaced *exposer
	for _, o := range list {
		if o.key == ex.key {
			replaced = o
		}
	}
	if max := cfg.Limits.MaxExposersPerService; replaced == nil && len(list) >= max {
		t.mu.Unlock()
		refuse(tunnel.OpenLimit, fmt.Sprintf("%s already has %d exposers, the maximum ([limits] max_exposers_per_service)", req.Service, max))
		return
	}
	if replaced != nil {
		// The same exposer again (restarted, or on a new tunnel while
		// the old one is not yet known dead): the new one wins at once.
		list = slices.DeleteFunc(list, func(o *exposer) bool { return o == replaced })
		replaced.withdraw(tunnel.OpenLimit, "replaced by a newer registration of exposer "+req.ExposerID)
	}
	if t.by == nil {
		t.by = map[string][]*exposer{}
	}
	t.by[req.Service] = append(list, ex)
	n := len(t.by[req.Service])
	t.mu.Unlock()
	s.metrics.exposers.WithLabelValues(req.Service).Set(float64(n))
	s.log.Info("exposer registered", "peer", se.ip, "credential", cred.logName(), "service", req.Service, "exposer", req.ExposerID,
		"replaced", replaced != nil, "exposers", n)
	defer func() {
		t.mu.Lock()
		t.by[req.Service] = slices.DeleteFunc(t.by[req.Service], func(o *exposer) bool { return o == ex })
		n := len(t.by[req.Service])
		t.mu.Unlock()
		s.metrics.exposers.WithLabelValues(req.Service).Set(float64(n))
		s.log.Info("exposer withdrawn", "peer", se.ip, "service", req.Service, "exposer", req.ExposerID, "exposers", n)
	}()
	if _, err := st.Write(tunnel.AppendOpenResponse(nil, tunnel.OpenOK, "")); err != nil {
		ex.withdraw(0, "")
		return
	}
	// The registration lives until the exposer closes the stream, its
	// session ends, or a newer registration or a reload withdraws it.
	ended := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, st)
		close(ended)
	}()
	select {
	case <-ended:
		ex.withdraw(0, "")
	case <-ex.gone:
		// The withdrawal: one more open response, with why, then FIN.
		_ = st.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = st.Write(tunnel.AppendOpenResponse(nil, ex.why.status, ex.why.msg))
		_ = st.Close()
		<-ended
	}
}

// withdrawExposers withdraws the registrations that cfg no longer allows:
// those of a service removed or no longer exposed, and those whose
// credential may no longer expose it; with cfg nil (a drain), every one.
// It returns how many.
func (s *Server) withdrawExposers(cfg *config.Config) int {
	t := &s.exposers
	t.mu.Lock()
	type withdrawal struct {
		ex     *exposer
		status tunnel.OpenStatus
		msg    string
	}
	var gone []withdrawal
	for name, list := range t.by {
		var svc *config.Service
		if cfg != nil {
			svc = cfg.Services[name]
		}
		for _, ex := range list {
			w := withdrawal{ex: ex, status: tunnel.OpenForbidden}
			switch {
			case cfg == nil:
				w.status, w.msg = tunnel.OpenUnavailable, "the gateway is shutting down"
			case svc == nil:
				w.status, w.msg = tunnel.OpenUnknownService, "service "+name+" was removed from the gateway's config"
			case !svc.Exposed():
				w.msg = "service " + name + " is no longer exposed by clients"
			case !ex.se.cred.Load().exposes(name):
				w.msg = "the credential may no longer expose " + name
			default:
				continue
			}
			gone = append(gone, w)
		}
	}
	t.mu.Unlock()
	for _, w := range gone {
		w.ex.withdraw(w.status, w.msg)
	}
	return len(gone)
}

// dialExposed opens a stream of svc toward one of its exposers: the least
// busy, and, when it refuses or does not answer in time, once more on the
// next. The exposer's answer is passed on as it is.
func (s *Server) dialExposed(ctx context.Context, cfg *config.Config, svc *config.Service) (net.Conn, tunnel.OpenStatus, string) {
	t := &s.exposers
	t.mu.Lock()
	cands := slices.Clone(t.by[svc.Name])
	t.mu.Unlock()
	if len(cands) == 0 {
		return nil, tunnel.OpenNotExposed, fmt.Sprintf("no client exposes %s right now", svc.Name)
	}
	slices.SortStableFunc(cands, func(a, b *exposer) int { return int(a.open.Load() - b.open.Load()) })
	status, msg := tunnel.OpenNotExposed, fmt.Sprintf("no client exposes %s right now", svc.Name)
	for i, ex := range cands {
		if i == 2 {
			break // one retry
		}
		c, st, m := s.openOnExposer(ctx, cfg, svc, ex)
		if st == tunnel.OpenOK {
			return c, st, ""
		}
		status, msg = st, m
		if st != tunnel.OpenRefused && st != tunnel.OpenTimeout && st != tunnel.OpenUnreachable && st != tunnel.OpenBusy {
			break // the exposer's own answer: pass it on
		}
	}
	return nil, status, msg
}

// openOnExposer opens one stream toward ex and reads its answer within
// the dial timeout.
func (s *Server) openOnExposer(ctx context.Context, cfg *config.Config, svc *config.Service, ex *exposer) (net.Conn, tunnel.OpenStatus, string) {
	select {
	case ex.opens <- struct{}{}:
	default:
		return nil, tunnel.OpenBusy, fmt.Sprintf("the exposer of %s has %d opens in flight; try again", svc.Name, exposerOpens)
	}
	defer func() { <-ex.opens }()
	// The exposer's leg holds buffer space like any stream.
	cost := ex.se.cfg.Limits.StreamCost()
	if !s.budget.reserve(cost) {
		s.count.busy.Add(1)
		return nil, tunnel.OpenBusy, fmt.Sprintf("the gateway's buffer budget (%s) is spent; try again later", cfg.Limits.BufferBudget)
	}
	st, err := ex.se.mux.OpenStream()
	if err != nil {
		s.budget.release(cost)
		return nil, tunnel.OpenUnreachable, fmt.Sprintf("the exposer of %s is gone", svc.Name)
	}
	// The exposer's session counts the stream like its own: it is not
	// idle, and a drain closes it only after the stream's end.
	ex.se.idleMu.Lock()
	ex.se.streams++
	if ex.se.idle != nil {
		ex.se.idle.Stop()
	}
	ex.se.idleMu.Unlock()
	c := &exposedConn{Stream: tunnel.Stream{Stream: st}, ex: ex, release: func() {
		s.budget.release(cost)
		ex.se.endStream()
	}}
	ex.open.Add(1)
	req, _ := tunnel.AppendOpenRequest(nil, svc.Name) // a configured name: valid
	d := cfg.Limits.DialTimeout.Duration
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		d = time.Until(dl)
	}
	_ = st.SetDeadline(time.Now().Add(d))
	stop := context.AfterFunc(ctx, func() { _ = st.SetDeadline(time.Now()) })
	status, msg, err := tunnel.OpenStatus(0), "", error(nil)
	if _, err = st.Write(req); err == nil {
		status, msg, err = tunnel.ReadOpenResponse(st)
	}
	stop()
	_ = st.SetDeadline(time.Time{})
	switch {
	case errors.Is(err, ctx.Err()) && ctx.Err() != nil:
		c.abort()
		return nil, tunnel.OpenUnreachable, "the tunnel ended"
	case errors.Is(err, yamux.ErrTimeout) || errors.Is(err, context.DeadlineExceeded):
		c.abort()
		return nil, tunnel.OpenTimeout, fmt.Sprintf("the exposer of %s did not answer within %s", svc.Name, cfg.Limits.DialTimeout.Duration)
	case err != nil:
		c.abort()
		return nil, tunnel.OpenUnreachable, fmt.Sprintf("the exposer of %s failed: %v", svc.Name, err)
	case status != tunnel.OpenOK:
		c.abort()
		return nil, status, msg
	}
	return c, tunnel.OpenOK, ""
}

// exposedConn is the gateway's stream toward an exposer, the backend of a
// stream to an exposed service.
type exposedConn struct {
	tunnel.Stream
	ex      *exposer
	release func()
	once    sync.Once
}

func (c *exposedConn) done() {
	c.once.Do(func() {
		c.ex.open.Add(-1)
		c.release()
	})
}

// Close ends the stream toward the exposer with a FIN, and lets the
// gateway's reaper free it once the exposer has closed its side.
func (c *exposedConn) Close() error {
	err := c.Stream.Close()
	go func() {
		c.ex.se.reap(c.Stream.Stream)
		c.done()
	}()
	return err
}

// abort resets the stream toward the exposer, so its local connection
// does not take a cut-off transfer for a whole one.
func (c *exposedConn) abort() {
	_ = c.ex.se.view.ResetStream(c.StreamID())
	c.done()
}

// Abort is abort for tunnel.Pipe, which calls it instead of Close when a
// copy failed (the dialer's tunnel died or the dialer reset the stream).
func (c *exposedConn) Abort() { c.abort() }

// RemoteAddr names the exposer.
func (c *exposedConn) RemoteAddr() net.Addr { return exposerAddr(c.ex.id) }

type exposerAddr string

func (exposerAddr) Network() string  { return "expose" }
func (a exposerAddr) String() string { return "expose:" + string(a) }
