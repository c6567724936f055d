package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/ferrygw/ferry/gateway/config"
)

// credential is who a session is: a named token with its services, or
// anonymous (public services only).
type credential struct {
	name     string          // token name, "" when anonymous
	services map[string]bool // services the token may open
	expose   map[string]bool // services the token may expose
	all      bool            // the token may open every service
	expires  time.Time       // a signed token's exp; zero for static tokens
	// label is the credential in metrics: a named static token's name,
	// "unnamed", "jwt" or "anonymous" (bounded by the config).
	label string
}

// logName is the credential in log lines: the token's name (or the start
// of its hash), a JWT's subject, or "anonymous". Never the token.
func (c *credential) logName() string {
	if c.anonymous() {
		return "anonymous"
	}
	return c.name
}

// exposes reports whether the credential may expose the named service.
func (c *credential) exposes(service string) bool { return c.expose[service] }

// metricLabel is the credential's label in metrics.
func (c *credential) metricLabel() string {
	if c.label == "" {
		return "anonymous"
	}
	return c.label
}

// expired reports whether a signed token has expired by now.
func (c *credential) expired(now time.Time) bool {
	return !c.expires.IsZero() && !now.Before(c.expires)
}

func (c *credential) anonymous() bool { return c.name == "" }

// allows reports whether the credential may open svc.
func (c *credential) allows(svc *config.Service) bool {
	if svc.Public {
		return true
	}
	return !c.anonymous() && (c.all || c.services[svc.Name])
}

// tokenTable finds static tokens by the SHA-256 of the presented token.
type tokenTable struct {
	hashes [][32]byte
	creds  []*credential
}

func newTokenTable(tokens []config.Token) *tokenTable {
	t := &tokenTable{}
	for _, tok := range tokens {
		raw, err := hex.DecodeString(tok.SHA256)
		if err != nil || len(raw) != 32 {
			continue // validated by config
		}
		var h [32]byte
		copy(h[:], raw)
		c := &credential{name: tok.Name, services: map[string]bool{}, label: tok.Name}
		if c.name == "" {
			c.name = "token-" + tok.SHA256[:8]
			c.label = "unnamed"
		}
		for _, s := range tok.Services {
			if s == "*" {
				c.all = true
			}
			c.services[s] = true
		}
		c.expose = map[string]bool{}
		for _, s := range tok.Expose {
			c.expose[s] = true
		}
		t.hashes = append(t.hashes, h)
		t.creds = append(t.creds, c)
	}
	return t
}

// lookup returns the credential of a presented token, comparing hashes in
// constant time over the whole table, or nil.
func (t *tokenTable) lookup(token string) *credential {
	h := sha256.Sum256([]byte(token))
	var found *credential
	for i := range t.hashes {
		if subtle.ConstantTimeCompare(h[:], t.hashes[i][:]) == 1 {
			found = t.creds[i]
		}
	}
	return found
}

// tokenPrefix marks the subprotocol that carries a browser's token, since
// a page cannot set headers on a WebSocket.
const tokenPrefix = "ferry.token."

// presentedToken returns the credential a handshake carries: a native
// client's "Authorization: Bearer" header, or a browser's
// "ferry.token.<token>" subprotocol. Tokens in URL queries are never
// read: they end up in logs. malformed is set for an Authorization header
// that is not a bearer token.
func presentedToken(r *http.Request) (tok string, malformed bool) {
	if v := r.Header.Get("Authorization"); v != "" {
		scheme, t, ok := strings.Cut(v, " ")
		t = strings.TrimSpace(t)
		if !ok || !strings.EqualFold(scheme, "Bearer") || t == "" {
			return "", true
		}
		return t, false
	}
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range splitTokens(v) {
			if strings.HasPrefix(p, tokenPrefix) && len(p) > len(tokenPrefix) {
				return p[len(tokenPrefix):], false
			}
		}
	}
	return "", false
}

// splitTokens splits a comma-separated header value into trimmed tokens.
func splitTokens(v string) []string {
	var out []string
	for _, t := range strings.Split(v, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}
