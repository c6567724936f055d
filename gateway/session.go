package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
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
	ws   *tunnel.Conn
	view *tunnel.MuxConn // the byte stream yamux runs on
	mux  *yamux.Session
	cred *credential
	ip   string
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

func newSession(s *Server, ws *tunnel.Conn, cred *credential, ip string) *session {
	se := &session{srv: s, ws: ws, view: ws.StreamConn(), cred: cred, ip: ip,
		refused: make(chan struct{}, config.RefusedStreams), busy: make(chan struct{}, config.BusyStreams),
		large: newCopySlots(&s.budget)}
	se.ctx, se.cancel = context.WithCancel(context.Background())
	return se
}

// muxConfig is the session's yamux configuration: Ferry's settings with
// the configured window, and a logger that keeps yamux's first error as
// the reason to close with.
func (se *session) muxConfig() *yamux.Config {
	cfg := tunnel.MuxConfig(uint32(se.srv.cfg.Limits.StreamWindow))
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
	select {
	case s.pending <- struct{}{}:
	default:
		s.count.pending.Add(1)
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
		http.Error(w, fmt.Sprintf("origin %s may not open tunnels here (add it to [server] allowed_origins)", origin), http.StatusForbidden)
		return
	}
	if isWebSocket(r) && !tunnelOffered(r) {
		s.count.badHello.Add(1)
		http.Error(w, "the client must offer the WebSocket subprotocol "+tunnel.Subprotocol, http.StatusBadRequest)
		return
	}
	browser := origin != "" && isWebSocket(r)
	ip := s.clientIP(r)
	if !s.limiter.allow(ip) {
		s.count.rate.Add(1)
		// Always plain HTTP: a WebSocket accepted only to be closed would
		// cost a connection per refused handshake, and any client can
		// claim to be a same-origin page.
		s.refuse(w, r, browser, &refusal{http.StatusTooManyRequests, 0,
			fmt.Sprintf("too many handshakes from %s; at most %g per second", ip, s.cfg.Limits.HandshakesPerSecondPerIP)})
		return
	}
	cred, rf := s.authenticate(r)
	if rf != nil {
		s.count.auth.Add(1)
		s.refuse(w, r, browser, rf)
		return
	}
	if rf := s.admit(ip, cred); rf != nil {
		s.count.sessionLimit.Add(1)
		s.refuse(w, r, browser, rf)
		return
	}
	admitted := true
	defer func() {
		if admitted {
			s.leave(ip, cred)
		}
	}()

	opts := s.acceptOptions()
	ws, err := tunnel.Accept(w, r, opts)
	if err != nil {
		return // Accept has answered with the reason
	}
	release()
	s.count.sessions.Add(1)

	se := newSession(s, ws, cred, ip)
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

// acceptOptions are the WebSocket settings of a tunnel.
func (s *Server) acceptOptions() *tunnel.AcceptOptions {
	opts := &tunnel.AcceptOptions{
		Subprotocols: []string{tunnel.Subprotocol},
		ReadLimit:    int64(s.cfg.Limits.MaxMessageSize),
	}
	if s.cfg.Compression.Enabled {
		opts.Compression = &compress.Options{
			Threshold:         int(s.cfg.Compression.Threshold),
			NoContextTakeover: !s.cfg.Compression.ContextTakeover,
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

// authenticate finds the handshake's credential. A wrong token is refused;
// no token is let in only when some service is public.
func (s *Server) authenticate(r *http.Request) (*credential, *refusal) {
	tok, malformed := presentedToken(r)
	switch {
	case malformed:
		return nil, &refusal{http.StatusUnauthorized, 4401, "the Authorization header must be \"Bearer <token>\""}
	case tok == "" && !s.anyPub:
		return nil, &refusal{http.StatusUnauthorized, 4401, "a token is required (Authorization: Bearer <token>, or the ferry.token.<token> subprotocol)"}
	case tok == "":
		return &credential{}, nil
	}
	if claims.LooksLikeJWT(tok) {
		if s.jwt == nil {
			return nil, &refusal{http.StatusUnauthorized, 4401, "this gateway does not accept signed tokens"}
		}
		cred, err := s.jwt.verify(tok)
		if err != nil {
			return nil, &refusal{http.StatusUnauthorized, 4401, err.Error()}
		}
		return cred, nil
	}
	cred := s.tokens.lookup(tok)
	if cred == nil {
		return nil, &refusal{http.StatusUnauthorized, 4401, "the token is not valid"}
	}
	return cred, nil
}

// admit counts a new session against the session limits.
func (s *Server) admit(ip string, cred *credential) *refusal {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.cfg.Limits
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
	if !s.budget.reserve(s.cfg.SessionFixed()) {
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

func (s *Server) leave(ip string, cred *credential) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.budget.release(s.cfg.SessionFixed())
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
	if d := s.cfg.Server.IdleTimeout.Duration; d > 0 {
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
	if exp := se.cred.expires; !exp.IsZero() {
		t := time.AfterFunc(exp.Sub(s.now()), func() {
			s.count.expired.Add(1)
			se.close(4401, "token expired")
		})
		defer t.Stop()
	}
	go func() {
		if se.view.KeepAlive(s.cfg.Server.Keepalive.Duration) != nil {
			s.count.keepalive.Add(1)
			s.logf("session from %s: %s", se.ip, tunnel.KeepAliveReason)
		}
	}()
	var wg sync.WaitGroup
	defer func() {
		se.cancel() // aborts every backend still connected
		se.mux.Close()
		wg.Wait()
		s.mu.Lock()
		delete(s.sessions, se)
		s.mu.Unlock()
		s.leave(se.ip, se.cred)
		se.closeAfterMux()
	}()
	cost := s.cfg.Limits.StreamCost()
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
		s.mu.Lock()
		draining := s.draining
		s.streams.Add(1)
		s.mu.Unlock()
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
				s.streams.Done()
				se.endStream()
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.streams.Done()
			defer se.endStream()
			switch {
			case !reserved:
				se.refuse(st, tunnel.OpenBusy, fmt.Sprintf("the gateway's buffer budget (%s) is spent; try again later", s.cfg.Limits.BufferBudget))
				<-se.busy
			case draining:
				se.refuse(st, tunnel.OpenUnavailable, "the gateway is shutting down")
				s.budget.release(cost)
			default:
				se.serveStream(st, cost)
			}
		}()
	}
}

// endStream counts a stream out, arming the idle timer after the last.
func (se *session) endStream() {
	se.idleMu.Lock()
	defer se.idleMu.Unlock()
	if se.streams--; se.streams == 0 && se.idle != nil {
		se.idle.Reset(se.srv.cfg.Server.IdleTimeout.Duration)
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
	refuse := func(status tunnel.OpenStatus, msg string) { se.refuse(st, status, msg) }
	_ = st.SetReadDeadline(time.Now().Add(s.cfg.Server.HandshakeTimeout.Duration))
	name, err := tunnel.ReadOpenRequest(st)
	if err != nil {
		if errors.Is(err, tunnel.ErrBadOpen) {
			refuse(tunnel.OpenBadRequest, err.Error())
		} else {
			refuse(tunnel.OpenBadRequest, "no open request within "+s.cfg.Server.HandshakeTimeout.Duration.String())
		}
		return
	}
	_ = st.SetReadDeadline(time.Time{})
	se.idleMu.Lock()
	n := se.streams
	se.idleMu.Unlock()
	if max := s.cfg.Limits.MaxStreamsPerSession; n > int64(max) {
		s.count.streamsLimited.Add(1)
		refuse(tunnel.OpenLimit, fmt.Sprintf("this session already has %d streams open, the maximum", max))
		return
	}
	svc := s.cfg.Services[name]
	if svc == nil {
		refuse(tunnel.OpenUnknownService, fmt.Sprintf("no service named %q", name))
		return
	}
	if se.cred.expired(s.now()) {
		s.count.streamsForbidden.Add(1)
		refuse(tunnel.OpenForbidden, "the session's token has expired")
		return
	}
	if !se.cred.allows(svc) {
		s.count.streamsForbidden.Add(1)
		if se.cred.anonymous() {
			refuse(tunnel.OpenForbidden, fmt.Sprintf("service %s needs a token", name))
		} else {
			refuse(tunnel.OpenForbidden, fmt.Sprintf("token %s may not open %s", se.cred.name, name))
		}
		return
	}
	backend, status, msg := s.dialBackend(se.ctx, svc) // gives up when the tunnel dies
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
	if _, err := st.Write(tunnel.AppendOpenResponse(nil, tunnel.OpenOK, "")); err != nil {
		return
	}
	_ = tunnel.PipeLimited(tunnel.Stream{Stream: st}, backend, se.large)
	// Both directions have ended on our side. A client that has not sent
	// its FIN yet (the copy to the backend failed) gets the reaper.
	se.reap(st)
}

// abort closes a backend connection with a reset where it can.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// refuse answers an open request with a refusal and closes the stream,
// then reaps it. A refused stream holds one of the session's refusal
// slots until the reaper is done, since each can hold a window of data;
// while a client holds config.RefusedStreams of them, its further streams
// to refuse are reset at once, without an answer (docs/PROTOCOL.md §3).
func (se *session) refuse(st *yamux.Stream, status tunnel.OpenStatus, msg string) {
	select {
	case se.refused <- struct{}{}:
	default:
		se.srv.count.streamsLimited.Add(1)
		se.srv.count.reaped.Add(1)
		_ = se.view.ResetStream(st.StreamID())
		return
	}
	defer func() { <-se.refused }()
	_ = st.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = st.Write(tunnel.AppendOpenResponse(nil, status, msg))
	_ = st.Close()
	se.reap(st)
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
