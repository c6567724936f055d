package config

import (
	"fmt"
	"math"
	"net"
)

// Validate checks every rule that Parse checks, on a Config built or changed
// in Go, and returns Errors naming each bad key (without lines: a Config in
// memory has none), or nil.
func (c *Config) Validate() error {
	ps := c.problems()
	if len(ps) == 0 {
		return nil
	}
	errs := make(Errors, len(ps))
	for i, p := range ps {
		errs[i] = &Error{File: c.File, Key: p.path.String(), Msg: p.msg}
	}
	return errs
}

// validator collects problems.
type validator struct{ ps []problem }

func (v *validator) add(path keyPath, format string, args ...any) {
	v.ps = append(v.ps, problem{path: path, msg: fmt.Sprintf(format, args...)})
}

func (v *validator) check(path keyPath, err error) {
	if err != nil {
		v.add(path, "%s", err.Error())
	}
}

func (v *validator) atLeast(path keyPath, n, min int) {
	if n < min {
		v.add(path, "must be at least %d, got %d", min, n)
	}
}

func (v *validator) positive(path keyPath, d Duration) {
	if d.Duration <= 0 {
		v.add(path, "must be more than 0, got %s", d)
	}
}

func (v *validator) notNegative(path keyPath, d Duration) {
	if d.Duration < 0 {
		v.add(path, "must not be negative, got %s", d)
	}
}

// problems checks every rule: each value on its own (as the decoder did),
// then the rules between keys.
func (c *Config) problems() []problem {
	var v validator
	c.checkServer(&v)

	cp := keyPath{"compression"}
	if c.Compression.Threshold < 0 {
		v.add(cp.key("threshold"), "must not be negative, got %d", int64(c.Compression.Threshold))
	}

	l, lp := &c.Limits, keyPath{"limits"}
	v.atLeast(lp.key("max_sessions"), l.MaxSessions, 1)
	v.atLeast(lp.key("max_sessions_per_ip"), l.MaxSessionsPerIP, 1)
	v.atLeast(lp.key("max_sessions_per_token"), l.MaxSessionsPerToken, 1)
	v.atLeast(lp.key("max_streams_per_session"), l.MaxStreamsPerSession, 1)
	if l.MaxMessageSize < KiB || l.MaxMessageSize > GiB {
		v.add(lp.key("max_message_size"), "must be from 1KiB to 1GiB, got %s", l.MaxMessageSize)
	}
	if r := l.HandshakesPerSecondPerIP; !(r > 0) || math.IsInf(r, 1) {
		v.add(lp.key("handshakes_per_second_per_ip"), "must be a number more than 0, got %v", r)
	}
	v.atLeast(lp.key("max_pending_handshakes"), l.MaxPendingHandshakes, 1)
	v.atLeast(lp.key("max_exposers_per_service"), l.MaxExposersPerService, 1)
	v.positive(lp.key("dial_timeout"), l.DialTimeout)
	if l.StreamWindow < 256*KiB || l.StreamWindow > 16*MiB {
		v.add(lp.key("stream_window"), "must be from 256KiB (yamux's smallest window) to 16MiB, got %s", l.StreamWindow)
	}
	if l.BufferBudget < 16*MiB {
		v.add(lp.key("buffer_budget"), "must be at least 16MiB, got %s", l.BufferBudget)
	} else if w := c.SessionWorst(); l.StreamWindow >= 256*KiB && l.StreamWindow <= 16*MiB && l.MaxMessageSize <= GiB && l.MaxStreamsPerSession >= 1 && int64(l.BufferBudget) < w {
		v.add(lp.key("buffer_budget"), "%s cannot hold one session at its worst, %s (see gateway.toml); raise it or lower max_streams_per_session or stream_window", l.BufferBudget, sizeOf(w))
	}

	a, ap := &c.Auth, keyPath{"auth"}
	if a.JWTSecretFile != "" && a.JWTPublicKeyFile != "" {
		v.add(ap.key("jwt_public_key_file"), "jwt_secret_file is set too; set one: jwt_secret_file for HS256, jwt_public_key_file for RS256 or EdDSA")
	}
	if a.JWTSecretFile == "" && a.JWTPublicKeyFile == "" {
		if a.JWTAudience != "" {
			v.add(ap.key("jwt_audience"), "set, but no JWT key is: set jwt_secret_file or jwt_public_key_file")
		}
		if a.JWTIssuer != "" {
			v.add(ap.key("jwt_issuer"), "set, but no JWT key is: set jwt_secret_file or jwt_public_key_file")
		}
	}

	np := keyPath{"network", "deny"}
	for i, p := range c.Network.Deny {
		v.check(np.index(i), checkPrefix(p, p.String()))
	}

	adm := keyPath{"admin", "listen"}
	v.check(adm, checkListenOrEmpty(c.Admin.Listen))
	if c.Admin.Listen != "" && c.Admin.Listen == c.Server.Listen {
		if _, port, err := net.SplitHostPort(c.Admin.Listen); err == nil && port != "0" {
			v.add(adm, "same address as server.listen")
		}
	}

	for _, x := range []struct{ key, val, check string }{
		{"format", c.Log.Format, "log-format"}, {"level", c.Log.Level, "log-level"},
	} {
		if x.val != "" { // "" in a Config built in Go: the default
			v.check(keyPath{"log", x.key}, checks[x.check](x.val))
		}
	}

	c.checkTokens(&v)
	c.checkServices(&v)
	return v.ps
}

func (c *Config) checkServer(v *validator) {
	s, sp := &c.Server, keyPath{"server"}
	v.check(sp.key("listen"), checkListen(s.Listen))
	v.check(sp.key("tunnel_path"), checkTunnelPath(s.TunnelPath))
	for i, o := range s.AllowedOrigins {
		v.check(sp.key("allowed_origins").index(i), checkOrigin(o))
	}
	for i, h := range s.AllowedHosts {
		v.check(sp.key("allowed_hosts").index(i), checkAllowedHost(h))
	}
	for i, p := range s.TrustedProxies {
		v.check(sp.key("trusted_proxies").index(i), checkPrefix(p, p.String()))
	}
	switch {
	case s.TLSCert != "" && s.TLSKey == "":
		v.add(sp.key("tls_cert"), "set, but tls_key is not; set both or neither")
	case s.TLSCert == "" && s.TLSKey != "":
		v.add(sp.key("tls_key"), "set, but tls_cert is not; set both or neither")
	}
	v.positive(sp.key("handshake_timeout"), s.HandshakeTimeout)
	v.positive(sp.key("keepalive"), s.Keepalive)
	v.notNegative(sp.key("idle_timeout"), s.IdleTimeout)
	v.notNegative(sp.key("drain_timeout"), s.DrainTimeout)
}

func (c *Config) checkTokens(v *validator) {
	byHash := map[string]int{}
	byName := map[string]int{}
	for i := range c.Tokens {
		t, tp := &c.Tokens[i], keyPath{"tokens"}.index(i)
		switch {
		case t.SHA256 == "":
			v.add(tp.key("sha256"), `missing: paste the [[tokens]] block that "ferry token new" prints`)
		case checkSHA256(t.SHA256) != nil:
			v.check(tp.key("sha256"), checkSHA256(t.SHA256))
		default:
			if j, dup := byHash[t.SHA256]; dup {
				v.add(tp.key("sha256"), "same hash as tokens[%d]", j)
			} else {
				byHash[t.SHA256] = i
			}
		}
		if t.Name != "" {
			if j, dup := byName[t.Name]; dup {
				v.add(tp.key("name"), "%q is also the name of tokens[%d]", t.Name, j)
			} else {
				byName[t.Name] = i
			}
		}
		if len(t.Services) == 0 && len(t.Expose) == 0 {
			v.add(tp.key("services"), `lists no service: name services, or "*" for all (or services to expose, in expose)`)
		}
		for j, name := range t.Expose {
			p := tp.key("expose").index(j)
			switch svc := c.Services[name]; {
			case name == "*":
				v.add(p, `"*" is not allowed in expose: name each service`)
			case checkServiceName(name) != nil:
				v.check(p, checkServiceName(name))
			case svc == nil:
				v.add(p, "unknown service %q: no [%s] table%s", name, keyPath{"services"}.key(name), suggest(name, c.ServiceNames()))
			case !svc.Exposed():
				v.add(p, "service %q has backend %q: only a service with backend = \"expose\" can be exposed", name, svc.Backend)
			}
		}
		for j, name := range t.Services {
			p := tp.key("services").index(j)
			switch {
			case name == "*":
				if len(t.Services) > 1 {
					v.add(p, `"*" (every service) must be the only entry`)
				}
			case checkTokenService(name) != nil:
				v.check(p, checkTokenService(name))
			case c.Services[name] == nil:
				v.add(p, "unknown service %q: no [%s] table%s", name, keyPath{"services"}.key(name), suggest(name, c.ServiceNames()))
			}
		}
	}
}

func (c *Config) checkServices(v *validator) {
	for _, name := range c.ServiceNames() {
		s, p := c.Services[name], keyPath{"services"}.key(name)
		v.check(p, checkServiceName(name))
		switch {
		case s == nil:
			v.add(p, "is nil")
			continue
		case s.Name != name:
			v.add(p, "Name is %q, not the service's key", s.Name)
		}
		if s.Backend == "" {
			v.add(p.key("backend"), `missing: want "host:port", "builtin:echo" or "expose"`)
		} else {
			v.check(p.key("backend"), checkBackend(s.Backend))
			v.check(p.key("backend"), c.Network.checkDenied(s.Backend))
		}
		if s.Framing != "" { // "" in a Config built in Go means "raw"
			v.check(p.key("framing"), checkFraming(s.Framing))
		}
		switch {
		case !s.Framed() && s.MaxMessage != 0:
			if s.FramingName() == "raw" {
				v.add(p.key("max_message"), `applies only to framed services: set framing = "lines" or "u32be", or remove it`)
			}
		case s.Framed() && (s.MaxMessage < 1 || s.MaxMessage > GiB):
			v.add(p.key("max_message"), "must be from 1B to 1GiB, got %s", s.MaxMessage)
		}
	}
}
