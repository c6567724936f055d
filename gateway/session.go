package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/compress"
	"github.com/ferrygw/ferry/tunnel"
	"github.com/hashicorp/yamux"
)

// session is one tunnel: a WebSocket carrying a yamux session.
type session struct {
	srv     *Server
	ws      *tunnel.Conn
	mux     *yamux.Session
	cred    *credential
	ip      string
	streams atomic.Int64
	once    sync.Once
	idle    *time.Timer // closes a session without streams; nil when idle_timeout is 0
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

	se := &session{srv: s, ws: ws, cred: cred, ip: ip}
	mux, err := yamux.Server(ws.StreamConn(), tunnel.MuxConfig(s.cfg.Server.Keepalive.Duration))
	if err != nil {
		ws.Close(tunnel.StatusInternalError, "yamux: "+err.Error())
		return
	}
	se.mux = mux
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		mux.Close()
		ws.Close(tunnel.StatusGoingAway, "the gateway is shutting down")
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
		closeWithin(ws, tunnel.StatusCode(rf.code), rf.reason, time.Second)
	}()
}

// closeWithin runs the closing handshake for at most d, then drops the
// connection.
func closeWithin(ws *tunnel.Conn, code tunnel.StatusCode, reason string, d time.Duration) {
	done := make(chan struct{})
	go func() {
		ws.Close(code, reason)
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		ws.CloseNow()
		<-done
	}
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
	if looksLikeJWT(tok) {
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

// run accepts the session's streams until the tunnel ends.
func (se *session) run() {
	s := se.srv
	defer s.sessWG.Done()
	if d := s.cfg.Server.IdleTimeout.Duration; d > 0 {
		se.idle = time.AfterFunc(d, func() {
			if se.streams.Load() == 0 {
				se.close(tunnel.StatusNormalClosure, "idle for "+d.String())
			}
		})
		defer se.idle.Stop()
	}
	defer func() {
		s.mu.Lock()
		delete(s.sessions, se)
		s.mu.Unlock()
		s.leave(se.ip, se.cred)
		se.close(tunnel.StatusNormalClosure, "")
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := se.mux.AcceptStream()
		if err != nil {
			return
		}
		// A client that keeps opening streams past the limit without
		// closing the refused ones makes yamux hold their buffers: 256
		// streams past the limit (refused ones a client has not closed
		// yet), the session ends.
		if max := s.cfg.Limits.MaxStreamsPerSession; max > 0 && se.mux.NumStreams() > max+256 {
			s.count.streamsLimited.Add(1)
			s.logf("session from %s: %d streams open, the limit is %d; closing it", se.ip, se.mux.NumStreams(), max)
			st.Close()
			se.close(tunnel.StatusPolicyViolation, fmt.Sprintf("more than %d streams open; the limit is %d", max+256, max))
			return
		}
		s.mu.Lock()
		draining := s.draining
		if !draining {
			s.streams.Add(1)
		}
		s.mu.Unlock()
		if draining {
			refuse(st, tunnel.OpenUnavailable, "the gateway is shutting down")
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.streams.Done()
			se.serveStream(st)
		}()
	}
}

// serveStream reads a stream's open request, checks it, dials the backend
// and pipes bytes until both directions end.
func (se *session) serveStream(st *yamux.Stream) {
	s := se.srv
	defer st.Close()
	n := se.streams.Add(1)
	if se.idle != nil {
		se.idle.Stop()
	}
	defer func() {
		if se.streams.Add(-1) == 0 && se.idle != nil {
			se.idle.Reset(s.cfg.Server.IdleTimeout.Duration)
		}
	}()
	_ = st.SetReadDeadline(time.Now().Add(s.cfg.Server.HandshakeTimeout.Duration))
	name, err := tunnel.ReadOpenRequest(st)
	if err != nil {
		if errors.Is(err, tunnel.ErrBadOpen) {
			refuse(st, tunnel.OpenBadRequest, err.Error())
		}
		return
	}
	_ = st.SetReadDeadline(time.Time{})
	if max := s.cfg.Limits.MaxStreamsPerSession; max > 0 && n > int64(max) {
		s.count.streamsLimited.Add(1)
		refuse(st, tunnel.OpenLimit, fmt.Sprintf("this session already has %d streams open, the maximum", max))
		return
	}
	svc := s.cfg.Services[name]
	if svc == nil {
		refuse(st, tunnel.OpenUnknownService, fmt.Sprintf("no service named %q", name))
		return
	}
	if se.cred.expired(s.now()) {
		s.count.streamsForbidden.Add(1)
		refuse(st, tunnel.OpenForbidden, "the session's token has expired")
		return
	}
	if !se.cred.allows(svc) {
		s.count.streamsForbidden.Add(1)
		if se.cred.anonymous() {
			refuse(st, tunnel.OpenForbidden, fmt.Sprintf("service %s needs a token", name))
		} else {
			refuse(st, tunnel.OpenForbidden, fmt.Sprintf("token %s may not open %s", se.cred.name, name))
		}
		return
	}
	// The dial gives up when the tunnel dies.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-se.mux.CloseChan():
			cancel()
		case <-ctx.Done():
		}
	}()
	backend, status, msg := s.dialBackend(ctx, svc)
	cancel()
	if status != tunnel.OpenOK {
		refuse(st, status, msg)
		return
	}
	defer backend.Close()
	s.count.streams.Add(1)
	if _, err := st.Write(tunnel.AppendOpenResponse(nil, tunnel.OpenOK, "")); err != nil {
		return
	}
	_ = tunnel.Pipe(tunnel.Stream{Stream: st}, backend)
}

// refuse answers an open request with a refusal and closes the stream,
// reading and dropping for a short while whatever the client sent after
// its request, so that yamux does not keep it buffered.
func refuse(st *yamux.Stream, status tunnel.OpenStatus, msg string) {
	_ = st.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = st.Write(tunnel.AppendOpenResponse(nil, status, msg))
	_ = st.Close()
	_ = st.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, _ = io.Copy(io.Discard, st)
}

// goAway closes the tunnel with 1001.
func (se *session) goAway() { se.close(tunnel.StatusGoingAway, "the gateway is shutting down") }

func (se *session) close(code tunnel.StatusCode, reason string) {
	se.once.Do(func() {
		// The WebSocket close goes first, so the client reads this code
		// and reason rather than yamux's plain 1000.
		closeWithin(se.ws, code, reason, 5*time.Second)
		se.mux.Close()
	})
}
