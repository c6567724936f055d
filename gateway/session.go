package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
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
func (s *Server) serveTunnel(w http.ResponseWriter, r *http.Request) {
	select {
	case s.pending <- struct{}{}:
	default:
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

	ip := s.clientIP(r)
	cred, status, reason := s.authenticate(r)
	if status != 0 {
		http.Error(w, reason, status)
		return
	}
	if status, reason := s.admit(ip, cred); status != 0 {
		http.Error(w, reason, status)
		return
	}
	admitted := true
	defer func() {
		if admitted {
			s.leave(ip, cred)
		}
	}()

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
	if isWebSocket(r) && !tunnelOffered(r) {
		http.Error(w, "the client must offer the WebSocket subprotocol "+tunnel.Subprotocol, http.StatusBadRequest)
		return
	}
	ws, err := tunnel.Accept(w, r, opts)
	if err != nil {
		return // Accept has answered with the reason
	}
	release()

	se := &session{srv: s, ws: ws, cred: cred, ip: ip}
	mux, err := yamux.Server(ws.StreamConn(), tunnel.MuxConfig(s.cfg.Server.Keepalive.Duration, s.cfg.Limits.MaxStreamsPerSession))
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
func (s *Server) authenticate(r *http.Request) (*credential, int, string) {
	tok, ok := bearerToken(r)
	if !ok {
		if r.Header.Get("Authorization") != "" {
			return nil, http.StatusUnauthorized, "the Authorization header must be \"Bearer <token>\""
		}
		if !s.anyPub {
			return nil, http.StatusUnauthorized, "a token is required (Authorization: Bearer <token>)"
		}
		return &credential{}, 0, ""
	}
	cred := s.tokens.lookup(tok)
	if cred == nil {
		return nil, http.StatusUnauthorized, "the token is not valid"
	}
	return cred, 0, ""
}

// admit counts a new session against the session limits.
func (s *Server) admit(ip string, cred *credential) (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.cfg.Limits
	switch {
	case s.draining:
		return http.StatusServiceUnavailable, "the gateway is shutting down"
	case l.MaxSessions > 0 && s.countSessions() >= l.MaxSessions:
		return http.StatusServiceUnavailable, fmt.Sprintf("the gateway holds its maximum of %d sessions", l.MaxSessions)
	case l.MaxSessionsPerIP > 0 && s.perIP[ip] >= l.MaxSessionsPerIP:
		return http.StatusTooManyRequests, fmt.Sprintf("%s already has %d sessions, the maximum per address", ip, l.MaxSessionsPerIP)
	case !cred.anonymous() && l.MaxSessionsPerToken > 0 && s.perToken[cred.name] >= l.MaxSessionsPerToken:
		return http.StatusTooManyRequests, fmt.Sprintf("token %s already has %d sessions, the maximum per token", cred.name, l.MaxSessionsPerToken)
	}
	s.perIP[ip]++
	if !cred.anonymous() {
		s.perToken[cred.name]++
	}
	return 0, ""
}

// countSessions counts sessions admitted, including those still in their
// handshake. Called with s.mu held.
func (s *Server) countSessions() int {
	n := 0
	for _, c := range s.perIP {
		n += c
	}
	return n
}

func (s *Server) leave(ip string, cred *credential) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
	if !cred.anonymous() {
		if s.perToken[cred.name]--; s.perToken[cred.name] <= 0 {
			delete(s.perToken, cred.name)
		}
	}
}

// clientIP is the peer's address (X-Forwarded-For is for the security
// work on trusted proxies).
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
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
		refuse(st, tunnel.OpenLimit, fmt.Sprintf("this session already has %d streams open, the maximum", max))
		return
	}
	svc := s.cfg.Services[name]
	if svc == nil {
		refuse(st, tunnel.OpenUnknownService, fmt.Sprintf("no service named %q", name))
		return
	}
	if !se.cred.allows(svc) {
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
	if _, err := st.Write(tunnel.AppendOpenResponse(nil, tunnel.OpenOK, "")); err != nil {
		return
	}
	_ = tunnel.Pipe(streamConn{st}, backend)
}

// streamConn gives a yamux stream the CloseWrite of a half-closable
// connection: yamux's Close sends FIN and reading goes on.
type streamConn struct{ *yamux.Stream }

func (c streamConn) CloseWrite() error { return c.Stream.Close() }

func refuse(st *yamux.Stream, status tunnel.OpenStatus, msg string) {
	_ = st.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = st.Write(tunnel.AppendOpenResponse(nil, status, msg))
	_ = st.Close()
}

// goAway closes the tunnel with 1001.
func (se *session) goAway() { se.close(tunnel.StatusGoingAway, "the gateway is shutting down") }

func (se *session) close(code tunnel.StatusCode, reason string) {
	se.once.Do(func() {
		se.mux.Close()
		_ = se.ws.Close(code, reason)
	})
}
