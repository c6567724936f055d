package gateway

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Stats counts what the gateway refused and why, for the operations
// work to export. Each field is a running total.
type Stats struct {
	Sessions         int64 // tunnels accepted
	RefusedOrigin    int64 // forbidden Origin (403)
	RefusedHost      int64 // a Host the gateway does not answer: DNS rebinding (403)
	RefusedAuth      int64 // missing, bad or expired credential (401 / 4401)
	RefusedRate      int64 // handshakes per second per address (429 / 4429)
	RefusedSessions  int64 // session limits: total, per address, per token (503, 429 / 4429)
	RefusedPending   int64 // too many handshakes in progress (503)
	RefusedBadHello  int64 // not a Ferry handshake (400)
	RefusedDraining  int64 // handshakes while the gateway drains (503 with Retry-After)
	StreamsOpened    int64
	StreamsForbidden int64 // stream opens the credential did not allow, or after expiry
	StreamsLimited   int64 // stream opens over max_streams_per_session
	BackendDenied    int64 // backend addresses in [network] deny
	Busy             int64 // sessions and streams refused for the buffer budget (503 / 4429, status 9)
	StreamsReaped    int64 // streams reset because the client left them open after the gateway closed them
	KeepaliveDeaths  int64 // sessions closed with 1011 because the peer stopped answering
	TokensExpired    int64 // sessions closed with 4401 when their JWT expired
	BufferReserved   int64 // buffer space reserved now (a gauge, not a total)
}

type counters struct {
	sessions, origin, host, auth, rate, sessionLimit, pending, badHello atomic.Int64
	draining                                                            atomic.Int64
	streams, streamsForbidden, streamsLimited, denied                   atomic.Int64
	busy, reaped, keepalive, expired                                    atomic.Int64
}

// Stats returns the refusal counters.
func (s *Server) Stats() Stats {
	c := &s.count
	return Stats{
		Sessions: c.sessions.Load(), RefusedOrigin: c.origin.Load(), RefusedHost: c.host.Load(), RefusedAuth: c.auth.Load(),
		RefusedRate: c.rate.Load(), RefusedSessions: c.sessionLimit.Load(), RefusedPending: c.pending.Load(),
		RefusedBadHello: c.badHello.Load(), RefusedDraining: c.draining.Load(), StreamsOpened: c.streams.Load(), StreamsForbidden: c.streamsForbidden.Load(),
		StreamsLimited: c.streamsLimited.Load(), BackendDenied: c.denied.Load(),
		Busy: c.busy.Load(), StreamsReaped: c.reaped.Load(), KeepaliveDeaths: c.keepalive.Load(),
		TokensExpired: c.expired.Load(), BufferReserved: s.budget.used.Load(),
	}
}

// clientIP is the address the per-address limits count: the peer's, or,
// when the peer is a trusted proxy, the nearest address in
// X-Forwarded-For that is not itself a trusted proxy.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !s.trusted(peer) {
		return host
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, splitTokens(v)...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			break // a garbled hop: believe nothing further left
		}
		if !s.trusted(a) {
			return a.Unmap().String()
		}
	}
	return host
}

func (s *Server) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.config().Server.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// fromTrustedProxy reports whether r's peer is in trusted_proxies.
func (s *Server) fromTrustedProxy(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	return err == nil && s.trusted(peer)
}

// requestHost returns the Host the client asked for and its scheme, "http"
// or "https": r.Host and whether the connection is TLS, or, from a trusted
// proxy, X-Forwarded-Host and X-Forwarded-Proto where it sends them (the
// last value of each: the one the nearest proxy wrote). A proto of https
// (or wss) means the proxy terminated TLS; any other value counts as
// plaintext.
func (s *Server) requestHost(r *http.Request) (host, scheme string) {
	host, scheme = r.Host, "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if !s.fromTrustedProxy(r) {
		return host, scheme
	}
	if v := lastValue(r.Header.Values("X-Forwarded-Host")); v != "" {
		host = v
	}
	if v := lastValue(r.Header.Values("X-Forwarded-Proto")); v != "" {
		scheme = "http"
		if strings.EqualFold(v, "https") || strings.EqualFold(v, "wss") {
			scheme = "https"
		}
	}
	return host, scheme
}

// lastValue is the last element of a comma-separated header's values.
func lastValue(values []string) string {
	for i := len(values) - 1; i >= 0; i-- {
		if t := splitTokens(values[i]); len(t) > 0 {
			return t[len(t)-1]
		}
	}
	return ""
}

// originAllowed: a request without Origin is a native client; same-origin
// (Origin's host:port equals the Host asked for, see requestHost) is always
// allowed, so the gateway's own pages work on any -listen; others must be
// in allowed_origins.
func (s *Server) originAllowed(r *http.Request, origin string) bool {
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	host, scheme := s.requestHost(r)
	// Same origin is the same scheme, host and port: an http:// page is
	// not same-origin with the gateway behind an https:// proxy.
	if err == nil && u.Host != "" && strings.EqualFold(u.Scheme, scheme) &&
		strings.EqualFold(hostWithPort(u.Host, u.Scheme), hostWithPort(host, scheme)) {
		return true
	}
	return s.config().Server.AllowsOrigin(strings.ToLower(origin))
}

// hostRefusal says why the gateway does not answer r's Host, or returns ""
// when it does. DNS rebinding points a name the attacker owns at the
// gateway, so a page of that name is same-origin with the gateway; but the
// browser then sends the attacker's name as Host, never an IP literal, and
// over TLS the gateway's certificate does not match that name. So: IP
// literals, "localhost" and names under ".localhost" (which browsers
// resolve to loopback without asking DNS) always pass; names listed in
// allowed_hosts pass; on a TLS connection (or behind a trusted proxy that
// says https) with allowed_hosts empty, every name passes; anything else
// is refused.
func (s *Server) hostRefusal(r *http.Request) string {
	host, scheme := s.requestHost(r)
	name := hostName(host)
	if _, err := netip.ParseAddr(name); err == nil {
		return ""
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return ""
	}
	hosts := &s.config().Server
	switch {
	case hosts.AllowsHost(name):
		return ""
	case len(hosts.AllowedHosts) > 0:
		return fmt.Sprintf("host %q is not in [server] allowed_hosts", host)
	case scheme == "https":
		return ""
	}
	return fmt.Sprintf("host %q is not allowed on a plaintext listener; add it to [server] allowed_hosts", host)
}

// hostName is the name in a Host value: without port, brackets and one
// trailing dot, in lower case ("[::1]:8080" gives "::1",
// "LOCALHOST.:80" gives "localhost").
func hostName(host string) string {
	if rest, ok := strings.CutPrefix(host, "["); ok {
		inner, _, ok := strings.Cut(rest, "]")
		if !ok {
			return ""
		}
		host = inner
	} else if strings.Count(host, ":") == 1 {
		host, _, _ = strings.Cut(host, ":")
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// checkHost wraps the public routes: every request but /healthz (which
// load balancers may ask for by any name) must pass hostRefusal, or gets
// 403 with the reason.
func (s *Server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			if reason := s.hostRefusal(r); reason != "" {
				s.count.host.Add(1)
				s.log.Warn("request refused", "peer", s.clientIP(r), "reason", "host", "status", http.StatusForbidden, "message", reason, "path", r.URL.Path)
				http.Error(w, reason, http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// hostWithPort adds the scheme's default port to a host without one.
func hostWithPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	switch scheme {
	case "https", "wss":
		return net.JoinHostPort(strings.Trim(host, "[]"), "443")
	default:
		return net.JoinHostPort(strings.Trim(host, "[]"), "80")
	}
}

// rateLimiter is a token bucket per address: rate handshakes per second,
// with a burst of the same size (at least 1). IPv4 addresses count one by
// one; IPv6 addresses by their /64 prefix, since one host usually holds a
// whole /64 and could otherwise take a fresh bucket for every handshake;
// anything that is no IP address shares one bucket.
//
// Each allow costs O(1) and memory is bounded: the buckets live in two
// generations, cur and prev. A generation lasts window = burst/rate, the
// time a bucket takes to refill from empty, so an address seen in neither
// generation has been idle for at least a window and its bucket, full
// again, is indistinguishable from a fresh one: the old generation is
// dropped whole instead of being walked. A generation also ends when it
// holds maxBuckets addresses; an address forgotten early that way at
// worst gets a fresh burst.
type rateLimiter struct {
	mu        sync.Mutex
	rate      float64
	burst     float64
	window    time.Duration
	max       int // addresses per generation
	epoch     time.Time
	started   time.Duration // when cur began, since epoch
	cur, prev map[limitKey]bucket
	now       func() time.Time
}

// maxBuckets bounds the addresses of one rateLimiter generation (about 40
// bytes each, so two generations hold at most some 5 MiB).
const maxBuckets = 1 << 16

// limitKey is an IPv4 address as IPv4-mapped IPv6, or an IPv6 /64 prefix
// with the low 64 bits zero, or all ones for anything else; the three
// kinds never collide.
type limitKey [16]byte

type bucket struct {
	tokens float64
	last   time.Duration // since epoch
}

func newRateLimiter(rate float64, now func() time.Time) *rateLimiter {
	if rate <= 0 || math.IsInf(rate, 0) || math.IsNaN(rate) {
		rate = 20
	}
	burst := math.Max(1, math.Ceil(rate))
	window := time.Duration(math.MaxInt64)
	if w := burst / rate * float64(time.Second); w < float64(math.MaxInt64) {
		window = time.Duration(math.Ceil(w))
	}
	return &rateLimiter{
		rate: rate, burst: burst, window: window, max: maxBuckets, epoch: now(), now: now,
		cur: map[limitKey]bucket{}, prev: map[limitKey]bucket{},
	}
}

func limitKeyOf(ip string) limitKey {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		var k limitKey
		for i := range k {
			k[i] = 0xff
		}
		return k
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		a = p.Addr()
	}
	return a.As16()
}

// allow takes a token from ip's bucket, if it has one.
func (l *rateLimiter) allow(ip string) bool {
	k := limitKeyOf(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now().Sub(l.epoch)
	if age := now - l.started; age >= l.window || len(l.cur) >= l.max {
		if age-l.window >= l.window {
			// cur began two windows ago: its buckets too were last used a
			// window ago or more, and are full.
			l.prev = map[limitKey]bucket{}
		} else {
			l.prev = l.cur
		}
		l.cur, l.started = make(map[limitKey]bucket, len(l.prev)), now
	}
	b, ok := l.cur[k]
	if !ok {
		if b, ok = l.prev[k]; !ok {
			b = bucket{tokens: l.burst, last: now}
		}
	}
	if elapsed := now - b.last; elapsed > 0 {
		b.tokens = math.Min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
	}
	b.last = now
	allowed := b.tokens >= 1
	if allowed {
		b.tokens--
	}
	l.cur[k] = b
	return allowed
}

// refusal is a handshake the gateway turns down: the HTTP status a native
// client gets and the close code a browser gets.
type refusal struct {
	status int
	code   uint16 // 4401, 4403 or 4429; 0 when a browser gets the HTTP status too
	reason string
}

func (r *refusal) Error() string { return fmt.Sprintf("%d %s", r.status, r.reason) }
