package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/ferrygw/ferry/gateway/config"
)

// credential is who a session is: a named token with its services, or
// anonymous (public services only).
type credential struct {
	name     string          // token name, "" when anonymous
	services map[string]bool // services the token may open
	all      bool            // the token may open every service
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
		c := &credential{name: tok.Name, services: map[string]bool{}}
		if c.name == "" {
			c.name = "token-" + tok.SHA256[:8]
		}
		for _, s := range tok.Services {
			if s == "*" {
				c.all = true
			}
			c.services[s] = true
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

// bearerToken returns the token of an "Authorization: Bearer" header.
// Tokens in URL queries are never read: they end up in logs.
func bearerToken(r *http.Request) (string, bool) {
	v := r.Header.Get("Authorization")
	if v == "" {
		return "", false
	}
	scheme, tok, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
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
