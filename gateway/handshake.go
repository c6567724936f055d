package gateway

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferrygw/ferry/claims"
	"github.com/ferrygw/ferry/compress"
	"github.com/ferrygw/ferry/gateway/config"
	"github.com/ferrygw/ferry/tunnel"
	"github.com/hashicorp/yamux"
)

// The tunnel handshake: its checks, the credential, the session limits,
// and the refusals, up to the session's start (session.go).

// handshake is what serveTunnel learned of a tunnel handshake.
type handshake struct {
	cred   *credential
	token  string
	ip     string
	origin string
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
