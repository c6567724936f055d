package gateway

import (
	"crypto/sha256"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/ferrygw/ferry/gateway/config"
)

// state is what a reload replaces at once: the config and what the
// gateway derives from it. Handshakes and stream opens read the state of
// the moment; a session keeps the config it was accepted under for what
// applies to new sessions only (see Reload).
type state struct {
	cfg     *config.Config
	tokens  *tokenTable
	jwt     *jwtVerifier
	jwtKey  [32]byte // SHA-256 of the key file's bytes, to tell a rotated key
	limiter *rateLimiter
	anyPub  bool // some service is public: handshakes without a credential are let in
	sdk     *liveSDK
}

// newState derives a state from cfg, reading the JWT key file. prev, when
// set, lends its rate limiter if the rate did not change, so a reload
// does not forgive every address its recent handshakes.
func (s *Server) newState(cfg *config.Config, prev *state) (*state, error) {
	st := &state{cfg: cfg, tokens: newTokenTable(cfg.Tokens)}
	for _, svc := range cfg.Services {
		if svc.Public {
			st.anyPub = true
		}
	}
	v, err := newJWTVerifier(cfg.Auth, s.now)
	if err != nil {
		return nil, err
	}
	st.jwt = v
	if f := cmp(cfg.Auth.JWTSecretFile, cfg.Auth.JWTPublicKeyFile); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		st.jwtKey = sha256.Sum256(b)
	}
	if prev != nil && prev.cfg.Limits.HandshakesPerSecondPerIP == cfg.Limits.HandshakesPerSecondPerIP {
		st.limiter = prev.limiter
	} else {
		st.limiter = newRateLimiter(cfg.Limits.HandshakesPerSecondPerIP, s.now)
	}
	if st.sdk, err = newLiveSDK(cfg); err != nil {
		return nil, fmt.Errorf("the live SDK (/ferry/sdk.js): %w", err)
	}
	return st, nil
}

// cmp returns the first of its arguments that is not "".
func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// config is the config of the moment.
func (s *Server) config() *config.Config { return s.state.Load().cfg }

// ReloadResult says what a reload did.
type ReloadResult struct {
	// Changed is false when the new config (and the key files it names)
	// equals the running one: nothing was done.
	Changed bool
	// Summary lists what changed, one item per change, fit for a log line.
	Summary []string
	// NewSessionsOnly names the changed keys that open sessions keep the
	// old value of; Restart the changed keys that need a restart.
	NewSessionsOnly, Restart []string
	// Revoked is the number of sessions closed because their credential is
	// no longer valid; Ended the number of streams ended because their
	// service was removed.
	Revoked, Ended int
	// Withdrawn is the number of exposer registrations withdrawn because
	// their service is gone or no longer exposed, or their credential may
	// no longer expose it.
	Withdrawn int
}

// newSessionKeys apply to sessions accepted after a reload; open sessions
// keep what they were accepted with.
var newSessionKeys = []struct {
	key string
	get func(*config.Config) any
}{
	{"server.keepalive", func(c *config.Config) any { return c.Server.Keepalive }},
	{"server.idle_timeout", func(c *config.Config) any { return c.Server.IdleTimeout }},
	{"limits.stream_window", func(c *config.Config) any { return c.Limits.StreamWindow }},
	{"limits.max_message_size", func(c *config.Config) any { return c.Limits.MaxMessageSize }},
	{"compression", func(c *config.Config) any { return c.Compression }},
}

// restartKeys need a restart: a reload keeps the running value.
var restartKeys = []struct {
	key string
	get func(*config.Config) any
}{
	{"server.listen", func(c *config.Config) any { return c.Server.Listen }},
	{"server.tunnel_path", func(c *config.Config) any { return c.Server.TunnelPath }},
	{"admin.listen", func(c *config.Config) any { return c.Admin.Listen }},
	{"limits.max_pending_handshakes", func(c *config.Config) any { return c.Limits.MaxPendingHandshakes }},
	{"log.format", func(c *config.Config) any { return c.Log.Format }},
	{"server.tls_cert", func(c *config.Config) any { return c.Server.TLSCert }},
	{"server.tls_key", func(c *config.Config) any { return c.Server.TLSKey }},
}

// Reload replaces the running config with cfg, which must be valid
// (config.Load checks), as a difference: no stream whose service is still
// there is dropped.
//   - Services added, removed or retargeted: new streams see the new
//     services; open streams keep their backend; streams of a removed
//     service end (the client reads end of file) and the reason is logged.
//   - Tokens and JWT keys: every session's credential is checked again at
//     once; a session whose credential is no longer valid is closed with
//     4401 "credential revoked", one whose token now allows other
//     services gets them at its next stream open.
//   - Limits, origins, hosts, proxies, deny, the log level: from the next
//     handshake or stream open.
//   - Keepalive, idle timeout, stream window, max_message_size and
//     compression: for new sessions only (ReloadResult.NewSessionsOnly).
//   - Listeners, the tunnel path, max_pending_handshakes, the log format
//     and the TLS file names need a restart (ReloadResult.Restart): the
//     running value stays. The TLS files themselves are read again when
//     they change, reload or not.
//
// Reload with the running config unchanged does nothing.
func (s *Server) Reload(cfg *config.Config) (ReloadResult, error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.state.Load()
	// What needs a restart keeps its running value, so that the next
	// reload reports it again rather than thinking it applied.
	next := *cfg
	next.Server.Listen, next.Server.TunnelPath = old.cfg.Server.Listen, old.cfg.Server.TunnelPath
	next.Server.TLSCert, next.Server.TLSKey = old.cfg.Server.TLSCert, old.cfg.Server.TLSKey
	next.Admin.Listen = old.cfg.Admin.Listen
	next.Limits.MaxPendingHandshakes = old.cfg.Limits.MaxPendingHandshakes
	next.Log.Format = old.cfg.Log.Format
	st, err := s.newState(&next, old)
	if err != nil {
		s.metrics.reloads.WithLabelValues("rejected").Inc()
		s.metrics.reloadOK.Set(0)
		return ReloadResult{}, err
	}
	var res ReloadResult
	for _, k := range restartKeys {
		if !reflect.DeepEqual(k.get(old.cfg), k.get(cfg)) {
			res.Restart = append(res.Restart, k.key)
		}
	}
	res.Summary = diffConfigs(old, st)
	for _, k := range newSessionKeys {
		if !reflect.DeepEqual(k.get(old.cfg), k.get(&next)) {
			res.NewSessionsOnly = append(res.NewSessionsOnly, k.key)
		}
	}
	res.Changed = len(res.Summary) > 0
	s.metrics.reloads.WithLabelValues("applied").Inc()
	s.metrics.reloadOK.Set(1)
	if !res.Changed {
		return res, nil
	}
	s.state.Store(st)
	s.sdk.Store(st.sdk)
	s.budget.limit.Store(int64(next.Limits.BufferBudget))
	s.level.Set(next.Log.SlogLevel())

	// Sessions whose credential no longer holds are closed now, not at
	// their next stream open: a revoked token's long stream would run on.
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for se := range s.sessions {
		sessions = append(sessions, se)
	}
	var ended []*liveStream
	for ls := range s.live {
		if next.Services[ls.service] == nil {
			ended = append(ended, ls)
		}
	}
	s.mu.Unlock()
	for _, se := range sessions {
		if reason := se.recheck(st); reason != "" {
			res.Revoked++
			s.metrics.revoked.Inc()
			go se.close(4401, reason) // 4401, as a refused credential
		}
	}
	for _, ls := range ended {
		if ls.end("service " + ls.service + " removed by a reload") {
			res.Ended++
		}
	}
	res.Withdrawn = s.withdrawExposers(&next)
	return res, nil
}

// recheck checks the session's credential against a new state and, when
// it still holds, makes the new one current. It returns why the session
// must close, or "".
func (se *session) recheck(st *state) string {
	if se.token == "" {
		if !st.anyPub {
			return "credential revoked: the gateway now requires a token"
		}
		return ""
	}
	cred, rf := st.authenticate(se.token)
	if rf != nil {
		return "credential revoked"
	}
	se.cred.Store(cred)
	return ""
}

// diffConfigs lists what differs between the running state and the next,
// in words, for the reload's log line.
func diffConfigs(old, next *state) []string {
	a, b := old.cfg, next.cfg
	var out []string
	for _, name := range b.ServiceNames() {
		o, n := a.Services[name], b.Services[name]
		switch {
		case o == nil:
			out = append(out, "service "+name+" added")
		case o.Backend != n.Backend:
			out = append(out, fmt.Sprintf("service %s retargeted from %s to %s", name, o.Backend, n.Backend))
		case !reflect.DeepEqual(o, n):
			out = append(out, "service "+name+" changed")
		}
	}
	for _, name := range a.ServiceNames() {
		if b.Services[name] == nil {
			out = append(out, "service "+name+" removed")
		}
	}
	tok := func(c *config.Config) map[string]config.Token {
		m := map[string]config.Token{}
		for _, t := range c.Tokens {
			m[t.SHA256] = t
		}
		return m
	}
	ta, tb := tok(a), tok(b)
	var added, removed, changed []string
	for h, t := range tb {
		switch o, ok := ta[h]; {
		case !ok:
			added = append(added, tokenLabel(t))
		case !reflect.DeepEqual(o, t):
			changed = append(changed, tokenLabel(t))
		}
	}
	for h, t := range ta {
		if _, ok := tb[h]; !ok {
			removed = append(removed, tokenLabel(t))
		}
	}
	for _, x := range []struct {
		what  string
		names []string
	}{{"added", added}, {"removed", removed}, {"changed", changed}} {
		if len(x.names) > 0 {
			slices.Sort(x.names)
			out = append(out, "tokens "+x.what+": "+strings.Join(x.names, ", "))
		}
	}
	if a.Auth != b.Auth || old.jwtKey != next.jwtKey {
		out = append(out, "signed-token settings or key changed")
	}
	for _, x := range []struct {
		what   string
		before any
		after  any
	}{
		{"[server] allowed_origins", a.Server.AllowedOrigins, b.Server.AllowedOrigins},
		{"[server] allowed_hosts", a.Server.AllowedHosts, b.Server.AllowedHosts},
		{"[server] trusted_proxies", a.Server.TrustedProxies, b.Server.TrustedProxies},
		{"[server] handshake_timeout", a.Server.HandshakeTimeout, b.Server.HandshakeTimeout},
		{"[server] drain_timeout", a.Server.DrainTimeout, b.Server.DrainTimeout},
		{"[server] keepalive (new sessions)", a.Server.Keepalive, b.Server.Keepalive},
		{"[server] idle_timeout (new sessions)", a.Server.IdleTimeout, b.Server.IdleTimeout},
		{"[compression] (new sessions)", a.Compression, b.Compression},
		{"[limits]", a.Limits, b.Limits},
		{"[network] deny", a.Network, b.Network},
		{"[log] level", a.Log.Level, b.Log.Level},
	} {
		if !reflect.DeepEqual(x.before, x.after) {
			out = append(out, x.what+" changed")
		}
	}
	return out
}

// tokenLabel names a token in a log line: its name, or the start of its
// hash; never the token.
func tokenLabel(t config.Token) string {
	if t.Name != "" {
		return t.Name
	}
	return "token-" + t.SHA256[:8]
}

// liveStream is a stream connected to its backend, which a reload that
// removes its service ends.
type liveStream struct {
	service string
	endOnce func(reason string) bool
}

func (ls *liveStream) end(reason string) bool { return ls.endOnce(reason) }

// track registers a connected stream; the returned func forgets it.
func (s *Server) track(ls *liveStream) (forget func()) {
	s.mu.Lock()
	s.live[ls] = struct{}{}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.live, ls)
		s.mu.Unlock()
	}
}

// ReloadFile loads the config file at path and applies it with Reload,
// with listen (the -listen flag, "" for none) standing in for [server]
// listen as it did at start. It writes the reload's one log line (applied,
// with what changed, or rejected, with every error) and returns the
// error of a rejected file; the running config then stays.
func (s *Server) ReloadFile(path, listen, trigger string) (ReloadResult, error) {
	cfg, err := config.Load(path)
	if err == nil && listen != "" {
		cfg.Server.Listen = listen
	}
	var res ReloadResult
	if err == nil {
		res, err = s.Reload(cfg)
	} else {
		s.metrics.reloads.WithLabelValues("rejected").Inc()
		s.metrics.reloadOK.Set(0)
	}
	if err != nil {
		s.log.Error("reload rejected: the running config stays", "trigger", trigger, "file", path, "errors", err.Error())
		return res, err
	}
	if !res.Changed && len(res.Restart) == 0 {
		s.log.Info("reload applied: no changes", "trigger", trigger, "file", path)
		return res, nil
	}
	attrs := []any{"trigger", trigger, "file", path, "changes", strings.Join(res.Summary, "; ")}
	if len(res.NewSessionsOnly) > 0 {
		attrs = append(attrs, "new_sessions_only", strings.Join(res.NewSessionsOnly, ", "))
	}
	if len(res.Restart) > 0 {
		attrs = append(attrs, "restart_needed", strings.Join(res.Restart, ", "))
	}
	attrs = append(attrs, "sessions_revoked", res.Revoked, "streams_ended", res.Ended, "exposers_withdrawn", res.Withdrawn)
	s.log.Info("reload applied", attrs...)
	return res, nil
}
