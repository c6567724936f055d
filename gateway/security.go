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
	RefusedAuth      int64 // missing, bad or expired credential (401 / 4401)
	RefusedRate      int64 // handshakes per second per address (429 / 4429)
	RefusedSessions  int64 // session limits: total, per address, per token (503, 429 / 4429)
	RefusedPending   int64 // too many handshakes in progress (503)
	RefusedBadHello  int64 // not a Ferry handshake (400)
	StreamsOpened    int64
	StreamsForbidden int64 // stream opens the credential did not allow, or after expiry
	StreamsLimited   int64 // stream opens over max_streams_per_session
	BackendDenied    int64 // backend addresses in [network] deny
}

type counters struct {
	sessions, origin, auth, rate, sessionLimit, pending, badHello atomic.Int64
	streams, streamsForbidden, streamsLimited, denied             atomic.Int64
}

// Stats returns the refusal counters.
func (s *Server) Stats() Stats {
	c := &s.count
	return Stats{
		Sessions: c.sessions.Load(), RefusedOrigin: c.origin.Load(), RefusedAuth: c.auth.Load(),
		RefusedRate: c.rate.Load(), RefusedSessions: c.sessionLimit.Load(), RefusedPending: c.pending.Load(),
		RefusedBadHello: c.badHello.Load(), StreamsOpened: c.streams.Load(), StreamsForbidden: c.streamsForbidden.Load(),
		StreamsLimited: c.streamsLimited.Load(), BackendDenied: c.denied.Load(),
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
	for _, p := range s.cfg.Server.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// originAllowed: a request without Origin is a native client; same-origin
// (Origin's host:port equals Host) is always allowed, so the gateway's own
// pages work on any -listen; others must be in allowed_origins.
func (s *Server) originAllowed(r *http.Request, origin string) bool {
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err == nil && u.Host != "" && strings.EqualFold(hostWithPort(u.Host, u.Scheme), hostWithPort(r.Host, requestScheme(r))) {
		return true
	}
	return s.cfg.Server.AllowsOrigin(strings.ToLower(origin))
}

func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
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
// with a burst of the same size (at least 1).
type rateLimiter struct {
	mu      sync.Mutex
	rate    float64
	burst   float64
	buckets map[string]*bucket
	now     func() time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(rate float64, now func() time.Time) *rateLimiter {
	if rate <= 0 || math.IsInf(rate, 0) || math.IsNaN(rate) {
		rate = 20
	}
	return &rateLimiter{rate: rate, burst: math.Max(1, math.Ceil(rate)), buckets: map[string]*bucket{}, now: now}
}

// allow takes a token from ip's bucket, if it has one.
func (l *rateLimiter) allow(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.buckets) > 10000 {
		// Forget addresses whose buckets have refilled: they are
		// indistinguishable from new ones.
		for k, b := range l.buckets {
			if now.Sub(b.last).Seconds()*l.rate >= l.burst {
				delete(l.buckets, k)
			}
		}
	}
	b := l.buckets[ip]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[ip] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// refusal is a handshake the gateway turns down: the HTTP status a native
// client gets and the close code a browser gets.
type refusal struct {
	status int
	code   uint16 // 4401, 4403 or 4429; 0 when a browser gets the HTTP status too
	reason string
}

func (r *refusal) Error() string { return fmt.Sprintf("%d %s", r.status, r.reason) }
