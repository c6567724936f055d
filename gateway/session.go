package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/gateway/config"
	"github.com/ferrygw/ferry/tunnel"
	"github.com/hashicorp/yamux"
)

// session is one tunnel: a WebSocket carrying a yamux session.
type session struct {
	srv  *Server
	cfg  *config.Config // the config the session was accepted under
	ws   *tunnel.Conn
	view *tunnel.MuxConn // the byte stream yamux runs on
	mux  *yamux.Session
	// cred is the session's credential; a reload may replace it with the
	// same token's new one. admitted is the one it was admitted (and is
	// counted per token) with.
	cred     atomic.Pointer[credential]
	admitted *credential
	token    string // the presented token, to check again on reload; never logged
	ip       string
	origin   string
	start    time.Time
	opened   atomic.Int64 // streams connected to a backend
	// refusing counts streams being refused or reaped after a refusal:
	// bounded by their own slots, they do not count against
	// max_streams_per_session. Guarded by idleMu, with streams, so that
	// the two are read at one moment.
	refusing int64
	// ctx ends when the session does; every backend connection of the
	// session is aborted then.
	ctx    context.Context
	cancel context.CancelFunc
	// refused holds a slot for each refused stream the client has not
	// closed yet (config.RefusedStreams); large grants bulk copy buffers
	// (config.LargeCopies).
	refused chan struct{}
	busy    chan struct{} // streams refused as busy (config.BusyStreams)
	large   copySlots
	muxLog  muxLog
	once    sync.Once

	idleMu  sync.Mutex
	streams int64       // streams accepted and not yet ended; guarded by idleMu
	idle    *time.Timer // closes a session without streams; nil when idle_timeout is 0
}

func newSession(s *Server, cfg *config.Config, ws *tunnel.Conn, h *handshake) *session {
	se := &session{srv: s, cfg: cfg, ws: ws, view: ws.StreamConn(), admitted: h.cred, token: h.token,
		ip: h.ip, origin: h.origin, start: time.Now(),
		refused: make(chan struct{}, config.RefusedStreams), busy: make(chan struct{}, config.BusyStreams),
		large: newCopySlots(&s.budget)}
	se.cred.Store(h.cred)
	se.ctx, se.cancel = context.WithCancel(context.Background())
	return se
}

// muxConfig is the session's yamux configuration: Ferry's settings with
// the configured window, and a logger that keeps yamux's first error as
// the reason to close with.
func (se *session) muxConfig() *yamux.Config {
	cfg := tunnel.MuxConfig(uint32(se.cfg.Limits.StreamWindow))
	cfg.LogOutput = nil
	cfg.Logger = &se.muxLog
	return cfg
}

// muxLog records the first error yamux logs, which says why a session
// that yamux ended (a protocol violation by the peer) ended.
type muxLog struct {
	mu    sync.Mutex
	first string
}

func (l *muxLog) Print(v ...any) { l.record(fmt.Sprint(v...)) }
func (l *muxLog) Printf(format string, v ...any) {
	l.record(fmt.Sprintf(format, v...))
}
func (l *muxLog) Println(v ...any) { l.record(fmt.Sprint(v...)) }

func (l *muxLog) record(msg string) {
	msg, ok := strings.CutPrefix(msg, "[ERR] yamux: ")
	if !ok {
		return
	}
	l.mu.Lock()
	if l.first == "" {
		l.first = msg
	}
	l.mu.Unlock()
}

func (l *muxLog) err() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first
}

// run accepts the session's streams until the tunnel ends, then ends
// every stream of it: backends are aborted, so no stream outlives its
// tunnel, and the session's counts and reservations are given back.
func (se *session) run() {
	s := se.srv
	defer s.sessWG.Done()
	if d := se.cfg.Server.IdleTimeout.Duration; d > 0 {
		se.idleMu.Lock() // the callback reads se.idle under idleMu
		se.idle = time.AfterFunc(d, func() {
			// A stream yamux has accepted but the accept loop has not
			// counted yet is in yamux's own count: look again later
			// (endStream re-arms the timer only for counted streams).
			se.idleMu.Lock()
			idle := se.streams == 0
			if idle && se.mux.NumStreams() > 0 {
				idle = false
				se.idle.Reset(d)
			}
			se.idleMu.Unlock()
			if idle {
				se.close(tunnel.StatusNormalClosure, "idle for "+d.String())
			}
		})
		se.idleMu.Unlock()
		defer se.idle.Stop()
	}
	if exp := se.admitted.expires; !exp.IsZero() {
		t := time.AfterFunc(exp.Sub(s.now()), func() {
			s.count.expired.Add(1)
			se.close(4401, "token expired")
		})
		defer t.Stop()
	}
	stopKeepAlive := se.view.StartKeepAlive(se.cfg.Server.Keepalive.Duration, func() { s.count.keepalive.Add(1) })
	defer stopKeepAlive()
	var wg sync.WaitGroup
	defer func() {
		se.cancel() // aborts every backend still connected
		se.mux.Close()
		wg.Wait()
		se.closeAfterMux()
		in, out := se.ws.WireBytes()
		s.mu.Lock()
		s.wireIn.Add(in)
		s.wireOut.Add(out)
		delete(s.sessions, se)
		s.checkDrainedLocked()
		s.mu.Unlock()
		s.leave(se.cfg, se.ip, se.admitted)
		se.logEnd(in, out)
	}()
	cost := se.cfg.Limits.StreamCost()
	for {
		st, err := se.mux.AcceptStream()
		if err != nil {
			return
		}
		if s.afterAccept != nil {
			s.afterAccept() // tests: widen the window before the count
		}
		se.idleMu.Lock()
		se.streams++
		if se.idle != nil {
			se.idle.Stop()
		}
		se.idleMu.Unlock()
		draining := s.isDraining()
		// The stream holds buffer space from now on (yamux has granted
		// its window), refused or not: its cost is reserved until it is
		// gone, or it takes one of the session's busy slots, whose cost
		// the session reserved.
		reserved := s.budget.reserve(cost)
		if !reserved {
			s.count.busy.Add(1)
			select {
			case se.busy <- struct{}{}:
			default:
				// More busy refusals pending than the session reserved
				// room for: reset it, which costs nothing.
				_ = se.view.ResetStream(st.StreamID())
				se.endStream()
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer se.endStream()
			switch {
			case !reserved:
				se.refuse(st, "", tunnel.OpenBusy, fmt.Sprintf("the gateway's buffer budget (%s) is spent; try again later", s.config().Limits.BufferBudget))
				<-se.busy
			case draining:
				se.refuse(st, "", tunnel.OpenUnavailable, "the gateway is shutting down")
				s.budget.release(cost)
			default:
				se.serveStream(st, cost)
			}
		}()
	}
}

// logEnd writes the session's access line.
func (se *session) logEnd(wireIn, wireOut int64) {
	s := se.srv
	code, reason, side := tunnel.StatusAbnormalClosure, "", "received"
	var ce *tunnel.CloseError
	if errors.As(se.ws.Err(), &ce) {
		code, reason = ce.Code, ce.Reason
		if ce.Local {
			side = "sent"
		}
	}
	dur := time.Since(se.start)
	s.metrics.closed(side, int(code))
	s.metrics.sessionSeconds.Observe(dur.Seconds())
	s.log.Info("session ended", "peer", se.ip, "credential", se.cred.Load().logName(), "origin", se.origin,
		"duration", dur.Round(time.Millisecond).String(), "streams", se.opened.Load(),
		"wire_in", wireIn, "wire_out", wireOut, "close_code", int(code), "close_reason", reason, "closed_by", closedBy(side))
}

// closedBy says who closed a tunnel, for the session line.
func closedBy(side string) string {
	if side == "sent" {
		return "gateway"
	}
	return "client"
}

// endStream counts a stream out, arming the idle timer after the last,
// and, while the gateway drains, closes the session after its last.
func (se *session) endStream() {
	se.idleMu.Lock()
	se.streams--
	last := se.streams == 0
	if last && se.idle != nil {
		se.idle.Reset(se.cfg.Server.IdleTimeout.Duration)
	}
	se.idleMu.Unlock()
	if last && se.srv.isDraining() {
		go se.goAway()
	}
}

// drain sends the session a yamux GoAway, so its client opens no more
// streams on it, and closes it with 1001 now if no stream is open (else
// endStream does, after the last).
func (se *session) drain() {
	_ = se.mux.GoAway()
	se.idleMu.Lock()
	idle := se.streams == 0
	se.idleMu.Unlock()
	if idle {
		go se.goAway()
	}
}

// serveStream reads a stream's open request, checks it, dials the backend
// and pipes bytes until both directions end. It gives back the stream's
// reservation (cost) once the stream is gone.
func (se *session) serveStream(st *yamux.Stream, cost int64) {
	s := se.srv
	released := false
	release := func() {
		if !released {
			released = true
			s.budget.release(cost)
		}
	}
	defer release()
	cfg := s.config() // the services and limits of the moment
	name := ""
	refuse := func(status tunnel.OpenStatus, msg string) { se.refuse(st, name, status, msg) }
	_ = st.SetReadDeadline(time.Now().Add(cfg.Server.HandshakeTimeout.Duration))
	req, err := tunnel.ReadRequest(st)
	name = req.Service
	if err != nil {
		if errors.Is(err, tunnel.ErrBadOpen) {
			refuse(tunnel.OpenBadRequest, err.Error())
		} else {
			refuse(tunnel.OpenBadRequest, "no open request within "+cfg.Server.HandshakeTimeout.Duration.String())
		}
		return
	}
	_ = st.SetReadDeadline(time.Time{})
	se.idleMu.Lock()
	n := se.streams - se.refusing
	se.idleMu.Unlock()
	if max := cfg.Limits.MaxStreamsPerSession; n > int64(max) {
		s.count.streamsLimited.Add(1)
		refuse(tunnel.OpenLimit, fmt.Sprintf("this session already has %d streams open, the maximum", max))
		return
	}
	if req.Register {
		se.serveRegistration(st, cfg, req)
		return
	}
	svc := cfg.Services[name]
	if svc == nil {
		refuse(tunnel.OpenUnknownService, fmt.Sprintf("no service named %q", name))
		return
	}
	cred := se.cred.Load()
	if cred.expired(s.now()) {
		s.count.streamsForbidden.Add(1)
		refuse(tunnel.OpenForbidden, "the session's token has expired")
		return
	}
	if !cred.allows(svc) {
		s.count.streamsForbidden.Add(1)
		if cred.anonymous() {
			refuse(tunnel.OpenForbidden, fmt.Sprintf("service %s needs a token", name))
		} else {
			refuse(tunnel.OpenForbidden, fmt.Sprintf("token %s may not open %s", cred.name, name))
		}
		return
	}
	t0 := time.Now()
	var backend net.Conn
	var status tunnel.OpenStatus
	var msg string
	if svc.Exposed() {
		backend, status, msg = s.dialExposed(se.ctx, cfg, svc)
	} else {
		backend, status, msg = s.dialBackend(se.ctx, cfg, svc) // gives up when the tunnel dies
	}
	s.metrics.dialSeconds.WithLabelValues(name).Observe(time.Since(t0).Seconds())
	if status != tunnel.OpenOK {
		refuse(status, msg)
		return
	}
	// When the session ends, the backend is aborted: a reset, since what
	// it sent or was sent may be cut short, and so that a direction
	// blocked reading a quiet backend ends with its tunnel.
	stop := context.AfterFunc(se.ctx, func() { abort(backend) })
	defer func() {
		if stop() {
			backend.Close()
		}
	}()
	s.count.streams.Add(1)
	se.opened.Add(1)
	s.metrics.streamOpens.WithLabelValues(name, "ok").Inc()
	open := s.metrics.streamsOpen.WithLabelValues(name)
	open.Inc()
	defer open.Dec()
	// A reload that removes the service ends the stream: the backend is
	// aborted and the client reads end of file after what it was sent.
	var removed atomic.Pointer[string]
	ls := &liveStream{service: name, endOnce: func(reason string) bool {
		if !removed.CompareAndSwap(nil, &reason) {
			return false
		}
		abort(backend)
		_ = st.Close()
		// What the client sends has nowhere to go: the copy toward the
		// backend stops now, and the reaper takes what still comes.
		_ = st.SetReadDeadline(time.Now())
		return true
	}}
	forget := s.track(ls)
	defer forget()
	if _, err := st.Write(tunnel.AppendOpenResponse(nil, tunnel.OpenOK, "")); err != nil {
		return
	}
	cc := newCountedConn(tunnel.Stream{Stream: st}, s.metrics, name, func() {
		if removed.Load() == nil { // a removed service's streams end with the FIN sent
			_ = se.view.ResetStream(st.StreamID())
			// This side's yamux forgets the stream only when the client
			// next sends something: the copy from it stops now.
			_ = st.SetReadDeadline(time.Now())
		}
	})
	err = tunnel.PipeLimited(cc, backend, se.large)
	var how string
	switch {
	case removed.Load() != nil:
		how = "service_removed"
	case err == nil:
		how = "closed" // both directions ended with an end of file
	case se.ctx.Err() != nil || errors.Is(err, tunnel.ErrTunnelLost):
		how = "tunnel_lost"
	default:
		how = "error"
	}
	s.metrics.streamEnds.WithLabelValues(name, how).Inc()
	attrs := []any{"peer", se.ip, "credential", cred.logName(), "service", name, "backend", backendAddr(svc, backend),
		"bytes_in", cc.in.Load(), "bytes_out", cc.out.Load(), "duration", time.Since(t0).Round(time.Millisecond).String(), "end", how}
	if r := removed.Load(); r != nil {
		attrs = append(attrs, "reason", *r)
	} else if err != nil {
		attrs = append(attrs, "error", err.Error())
	}
	s.log.Info("stream ended", attrs...)
	// Both directions have ended on our side. A client that has not sent
	// its FIN yet (the copy to the backend failed) gets the reaper, unless
	// the stream was reset: then nothing of it is left to read.
	if !cc.wasReset.Load() || removed.Load() != nil {
		se.reap(st)
	}
}

// backendAddr is the address a stream's backend connection went to.
func backendAddr(svc *config.Service, c net.Conn) string {
	if _, ok := c.(*echoConn); ok {
		return svc.Backend
	}
	return c.RemoteAddr().String()
}

// abort closes a backend connection with a reset where it can.
func abort(c net.Conn) {
	if a, ok := c.(interface{ abort() }); ok {
		a.abort()
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// refuse answers an open request for service (or "" before its name is
// read) with a refusal and closes the stream, then reaps it. A refused
// stream holds one of the session's refusal slots until the reaper is
// done, since each can hold a window of data; while a client holds
// config.RefusedStreams of them, its further streams to refuse are reset
// at once, without an answer (docs/PROTOCOL.md §3).
func (se *session) refuse(st *yamux.Stream, service string, status tunnel.OpenStatus, msg string) {
	s := se.srv
	se.idleMu.Lock()
	se.refusing++
	se.idleMu.Unlock()
	defer func() {
		se.idleMu.Lock()
		se.refusing--
		se.idleMu.Unlock()
	}()
	if service != "" && s.config().Services[service] != nil {
		// Only configured names become labels: the client chooses the rest.
		s.metrics.streamOpens.WithLabelValues(service, openResult(status)).Inc()
	} else {
		s.metrics.streamOpens.WithLabelValues("", openResult(status)).Inc()
	}
	s.log.Warn("stream refused", "peer", se.ip, "credential", se.cred.Load().logName(), "service", service,
		"status", int(status), "result", openResult(status), "message", msg)
	select {
	case se.refused <- struct{}{}:
	default:
		s.count.streamsLimited.Add(1)
		s.count.reaped.Add(1)
		_ = se.view.ResetStream(st.StreamID())
		return
	}
	defer func() { <-se.refused }()
	_ = st.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = st.Write(tunnel.AppendOpenResponse(nil, status, msg))
	_ = st.Close()
	se.reap(st)
}

// openResult is an open status as a metric label.
func openResult(status tunnel.OpenStatus) string {
	switch status {
	case tunnel.OpenOK:
		return "ok"
	case tunnel.OpenUnknownService:
		return "unknown_service"
	case tunnel.OpenForbidden:
		return "forbidden"
	case tunnel.OpenRefused:
		return "refused"
	case tunnel.OpenTimeout:
		return "timeout"
	case tunnel.OpenLimit:
		return "limit"
	case tunnel.OpenUnreachable:
		return "unreachable"
	case tunnel.OpenBadRequest:
		return "bad_request"
	case tunnel.OpenUnavailable:
		return "shutting_down"
	case tunnel.OpenBusy:
		return "busy"
	}
	return "status_" + strconv.Itoa(int(status))
}

// reap finishes a stream this side has closed: it reads and drops what
// the client still sends until the client's FIN, for at most the reap
// timeout, then resets the stream on both sides (tunnel.MuxConn's
// ResetStream), which frees what yamux holds for it. yamux's own timer
// for this (StreamCloseTimeout) is off, since it would also end streams
// that are half-closed on purpose (tunnel.MuxConfig).
func (se *session) reap(st *yamux.Stream) {
	_ = st.SetReadDeadline(time.Now().Add(se.srv.reapTimeout))
	_, err := io.Copy(io.Discard, st)
	if err == nil || se.mux.IsClosed() {
		return // the client's FIN came
	}
	se.srv.count.reaped.Add(1)
	_ = se.view.ResetStream(st.StreamID())
}

// goAway closes the tunnel with 1001.
func (se *session) goAway() { se.close(tunnel.StatusGoingAway, "the gateway is shutting down") }

// close closes the tunnel with code and reason, then yamux.
func (se *session) close(code tunnel.StatusCode, reason string) {
	se.once.Do(func() {
		// The WebSocket close goes first, so the client reads this code
		// and reason rather than one yamux's exit would cause.
		se.ws.CloseWithin(code, reason, 5*time.Second)
		se.mux.Close()
	})
}

// closeAfterMux closes the tunnel after yamux has ended. When nothing
// else closed it, yamux ended on its own: the peer broke the multiplexing
// protocol (1002, with yamux's complaint).
func (se *session) closeAfterMux() {
	if reason := se.muxLog.err(); reason != "" {
		se.close(tunnel.StatusProtocolError, "yamux: "+reason)
		return
	}
	se.close(tunnel.StatusInternalError, "the multiplexer ended")
}
