package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/claims"
	"github.com/ferrygw/ferry/compress"
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

// handshake is what serveTunnel learned of a tunnel handshake.
type handshake struct {
	cred   *credential
	token  string
	ip     string
	origin string
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

// serveTunnel checks a tunnel handshake, upgrades it and runs the session.
//
// The checks run cheapest first: handshakes in progress, Origin, the
// subprotocol, the per-address rate, the credential, the session limits.
// A browser from an allowed origin that fails the credential or a limit
// gets its WebSocket accepted and closed at once with 4401/4403/4429 and
// the reason, since a page cannot read an HTTP refusal; everyone else gets
// the HTTP status with the reason.
func (s *Server) serveTunnel(w http.ResponseWriter, r *http.Request) {
	st := s.state.Load()
	cfg := st.cfg
	ip := s.clientIP(r)
	if s.isDraining() {
		// A load balancer may still send clients here: they are told to
		// come back, which their reconnection does, to another gateway.
		s.count.draining.Add(1)
		s.logRefusal(r, ip, "draining", http.StatusServiceUnavailable, "the gateway is shutting down")
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter(cfg)))
		http.Error(w, "the gateway is shutting down; try again", http.StatusServiceUnavailable)
		return
	}
	select {
	case s.pending <- struct{}{}:
	default:
		s.count.pending.Add(1)
		s.logRefusal(r, ip, "pending", http.StatusServiceUnavailable, "too many handshakes in progress")
		http.Error(w, "too many handshakes in progress; try again later", http.StatusServiceUnavailable)
		return
	}
	released := false
	release := func() {
		if !released {
			released = true
			<-s.pending
		}
	}
	defer release()

	origin := r.Header.Get("Origin")
	if !s.originAllowed(r, origin) {
		s.count.origin.Add(1)
		msg := fmt.Sprintf("origin %s may not open tunnels here (add it to [server] allowed_origins)", origin)
		s.logRefusal(r, ip, "origin", http.StatusForbidden, msg)
		http.Error(w, msg, http.StatusForbidden)
		return
	}
	if isWebSocket(r) && !tunnelOffered(r) {
		s.count.badHello.Add(1)
		s.logRefusal(r, ip, "bad_handshake", http.StatusBadRequest, "no "+tunnel.Subprotocol+" subprotocol")
		http.Error(w, "the client must offer the WebSocket subprotocol "+tunnel.Subprotocol, http.StatusBadRequest)
		return
	}
	browser := origin != "" && isWebSocket(r)
	if !st.limiter.allow(ip) {
		s.count.rate.Add(1)
		// Always plain HTTP: a WebSocket accepted only to be closed would
		// cost a connection per refused handshake, and any client can
		// claim to be a same-origin page.
		rf := &refusal{http.StatusTooManyRequests, 0,
			fmt.Sprintf("too many handshakes from %s; at most %g per second", ip, cfg.Limits.HandshakesPerSecondPerIP)}
		s.logRefusal(r, ip, "rate", rf.status, rf.reason)
		s.refuse(w, r, browser, rf)
		return
	}
	tok, malformed := presentedToken(r)
	cred, rf := st.authenticateMalformed(tok, malformed)
	if rf != nil {
		s.count.auth.Add(1)
		s.logRefusal(r, ip, "auth", rf.status, rf.reason)
		s.refuse(w, r, browser, rf)
		return
	}
	if rf := s.admit(cfg, ip, cred); rf != nil {
		s.count.sessionLimit.Add(1)
		s.logRefusal(r, ip, "session_limit", rf.status, rf.reason)
		s.refuse(w, r, browser, rf)
		return
	}
	admitted := true
	defer func() {
		if admitted {
			s.leave(cfg, ip, cred)
		}
	}()

	ws, err := tunnel.Accept(w, r, acceptOptions(cfg))
	if err != nil {
		s.logRefusal(r, ip, "bad_handshake", http.StatusBadRequest, err.Error())
		return // Accept has answered with the reason
	}
	release()
	s.count.sessions.Add(1)
	s.metrics.sessionsBy.WithLabelValues(cred.metricLabel()).Inc()

	se := newSession(s, cfg, ws, &handshake{cred: cred, token: tok, ip: ip, origin: origin})
	mux, err := yamux.Server(se.view, se.muxConfig())
	if err != nil {
		ws.Close(tunnel.StatusInternalError, "yamux: "+err.Error())
		return
	}
	se.mux = mux
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		ws.Close(tunnel.StatusGoingAway, "the gateway is shutting down")
		mux.Close()
		return
	}
	s.sessions[se] = struct{}{}
	s.sessWG.Add(1)
	s.mu.Unlock()
	admitted = false // leave is now the session's job
	// The handler returns so that net/http lets go of its per-request
	// state; the session lives on its own goroutine.
	go se.run()
}

// retryAfter is the Retry-After of a handshake refused while draining:
// the drain timeout, by when this gateway is gone and its address may
// lead to another (at least a second).
func retryAfter(cfg *config.Config) int {
	return max(1, int(cfg.Server.DrainTimeout.Seconds()))
}

// logRefusal writes the line of a refused handshake.
func (s *Server) logRefusal(r *http.Request, ip, reason string, status int, msg string) {
	s.log.Warn("handshake refused", "peer", ip, "reason", reason, "status", status, "message", msg,
		"origin", r.Header.Get("Origin"), "path", r.URL.Path)
}

// LimitsHeader is the header of the 101 response that tells a client the
// session's limits (docs/PROTOCOL.md §1): "streams=N".
const LimitsHeader = "Ferry-Limits"

// acceptOptions are the WebSocket settings of a tunnel under cfg.
func acceptOptions(cfg *config.Config) *tunnel.AcceptOptions {
	opts := &tunnel.AcceptOptions{
		Subprotocols:   []string{tunnel.Subprotocol},
		ReadLimit:      int64(cfg.Limits.MaxMessageSize),
		ResponseHeader: http.Header{LimitsHeader: {"streams=" + strconv.Itoa(cfg.Limits.MaxStreamsPerSession)}},
	}
	if cfg.Compression.Enabled {
		opts.Compression = &compress.Options{
			Threshold:         int(cfg.Compression.Threshold),
			NoContextTakeover: !cfg.Compression.ContextTakeover,
		}
		if opts.Compression.Threshold == 0 {
			opts.Compression.Threshold = -1 // "0B": compress everything
		}
	}
	return opts
}

// refuse answers a refused handshake: with the HTTP status, or, for a
// browser, with a WebSocket closed at once with the refusal's code. The
// token subprotocol is never echoed: only ferry.v1 is selected.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, browser bool, rf *refusal) {
	if !browser || rf.code == 0 {
		http.Error(w, rf.reason, rf.status)
		return
	}
	// At most 64 such closes at a time, each given a second: they hold a
	// connection while the close handshake runs.
	select {
	case s.closers <- struct{}{}:
	default:
		http.Error(w, rf.reason, rf.status)
		return
	}
	ws, err := tunnel.Accept(w, r, &tunnel.AcceptOptions{Subprotocols: []string{tunnel.Subprotocol}, ReadLimit: 1 << 10})
	if err != nil {
		<-s.closers
		return
	}
	s.sessWG.Add(1)
	go func() {
		defer s.sessWG.Done()
		defer func() { <-s.closers }()
		ws.CloseWithin(tunnel.StatusCode(rf.code), rf.reason, time.Second)
	}()
}

// isWebSocket reports whether r asks for a WebSocket upgrade; Accept
// explains what is wrong with any other request.
func isWebSocket(r *http.Request) bool {
	for _, v := range r.Header.Values("Upgrade") {
		for _, p := range splitTokens(v) {
			if strings.EqualFold(p, "websocket") {
				return true
			}
		}
	}
	return false
}

func tunnelOffered(r *http.Request) bool {
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range splitTokens(v) {
			if p == tunnel.Subprotocol {
				return true
			}
		}
	}
	return false
}

// authenticateMalformed finds the credential of a presented token (see
// presentedToken). A wrong token is refused; no token is let in only when
// some service is public.
func (st *state) authenticateMalformed(tok string, malformed bool) (*credential, *refusal) {
	switch {
	case malformed:
		return nil, &refusal{http.StatusUnauthorized, 4401, "the Authorization header must be \"Bearer <token>\""}
	case tok == "" && !st.anyPub:
		return nil, &refusal{http.StatusUnauthorized, 4401, "a token is required (Authorization: Bearer <token>, or the ferry.token.<token> subprotocol)"}
	case tok == "":
		return &credential{}, nil
	}
	return st.authenticate(tok)
}

// authenticate checks a token that is there.
func (st *state) authenticate(tok string) (*credential, *refusal) {
	if claims.LooksLikeJWT(tok) {
		if st.jwt == nil {
			return nil, &refusal{http.StatusUnauthorized, 4401, "this gateway does not accept signed tokens"}
		}
		cred, err := st.jwt.verify(tok)
		if err != nil {
			return nil, &refusal{http.StatusUnauthorized, 4401, err.Error()}
		}
		return cred, nil
	}
	cred := st.tokens.lookup(tok)
	if cred == nil {
		return nil, &refusal{http.StatusUnauthorized, 4401, "the token is not valid"}
	}
	return cred, nil
}

// admit counts a new session against the session limits of cfg.
func (s *Server) admit(cfg *config.Config, ip string, cred *credential) *refusal {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := cfg.Limits
	switch {
	case s.draining:
		return &refusal{http.StatusServiceUnavailable, 0, "the gateway is shutting down"}
	case l.MaxSessions > 0 && s.admitted >= l.MaxSessions:
		return &refusal{http.StatusServiceUnavailable, 4429, fmt.Sprintf("the gateway holds its maximum of %d sessions", l.MaxSessions)}
	case l.MaxSessionsPerIP > 0 && s.perIP[ip] >= l.MaxSessionsPerIP:
		return &refusal{http.StatusTooManyRequests, 4429, fmt.Sprintf("%s already has %d sessions, the maximum per address", ip, l.MaxSessionsPerIP)}
	case !cred.anonymous() && l.MaxSessionsPerToken > 0 && s.perToken[cred.name] >= l.MaxSessionsPerToken:
		return &refusal{http.StatusTooManyRequests, 4429, fmt.Sprintf("token %s already has %d sessions, the maximum per token", cred.name, l.MaxSessionsPerToken)}
	}
	if !s.budget.reserve(cfg.SessionFixed()) {
		s.count.busy.Add(1)
		return &refusal{http.StatusServiceUnavailable, 4429, fmt.Sprintf("the gateway's buffer budget (%s) is spent; try again later", l.BufferBudget)}
	}
	s.admitted++
	s.perIP[ip]++
	if !cred.anonymous() {
		s.perToken[cred.name]++
	}
	return nil
}

// leave gives back what admit took, with the config it took it under.
func (s *Server) leave(cfg *config.Config, ip string, cred *credential) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.budget.release(cfg.SessionFixed())
	s.admitted--
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
	if !cred.anonymous() {
		if s.perToken[cred.name]--; s.perToken[cred.name] <= 0 {
			delete(s.perToken, cred.name)
		}
	}
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
	go func() {
		if se.view.KeepAlive(se.cfg.Server.Keepalive.Duration) != nil {
			s.count.keepalive.Add(1)
		}
	}()
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
