// Package claims is what a Ferry signed token says and how it is signed and
// checked: the claims (exp, services, expose, and the optional sub, aud and
// iss), minting for the web backends that hand pages short-lived scoped
// tokens, and verification for the gateway. Both sides import this one
// package, so they agree by construction.
//
// Tokens are JWTs (RFC 7519) signed with HS256 (a shared secret of at
// least 32 bytes), EdDSA (Ed25519) or, for verification only, RS256.
package claims

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are what a Ferry token grants. Expires is required; a token
// grants nothing unless it lists Services (that it may open) or Expose
// (that it may publish).
type Claims struct {
	Subject  string    // sub: who the token is for, shown in logs; optional
	Services []string  // services: names the token may open
	Expose   []string  // expose: names the token may publish (reverse tunnels)
	Audience []string  // aud: checked when the gateway sets [auth] jwt_audience
	Issuer   string    // iss: checked when the gateway sets [auth] jwt_issuer
	Expires  time.Time // exp: required
	IssuedAt time.Time // iat: optional
}

// wire is the JSON shape of Claims.
type wire struct {
	jwt.RegisteredClaims
	Services []string `json:"services,omitempty"`
	Expose   []string `json:"expose,omitempty"`
}

// MinSecret is the shortest HS256 secret accepted, in bytes.
const MinSecret = 32

// Key is a key that signs tokens, verifies them, or both: an HS256
// secret, an Ed25519 key pair or public key, or an RSA public key.
type Key struct {
	method jwt.SigningMethod
	sign   any // []byte or ed25519.PrivateKey; nil when the key only verifies
	verify any // []byte, ed25519.PublicKey or *rsa.PublicKey
}

// HS256 returns the key of a shared secret, which must hold at least
// MinSecret bytes.
func HS256(secret []byte) (*Key, error) {
	if len(secret) < MinSecret {
		return nil, fmt.Errorf("an HS256 secret needs at least %d bytes, got %d", MinSecret, len(secret))
	}
	s := append([]byte(nil), secret...)
	return &Key{method: jwt.SigningMethodHS256, sign: s, verify: s}, nil
}

// EdDSA returns the key of an Ed25519 private key: it signs, and verifies
// what it signed.
func EdDSA(priv ed25519.PrivateKey) (*Key, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("an Ed25519 private key has %d bytes, got %d", ed25519.PrivateKeySize, len(priv))
	}
	return &Key{method: jwt.SigningMethodEdDSA, sign: priv, verify: priv.Public()}, nil
}

// PublicKey returns a key that only verifies: an ed25519.PublicKey (EdDSA)
// or an *rsa.PublicKey (RS256).
func PublicKey(pub crypto.PublicKey) (*Key, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return &Key{method: jwt.SigningMethodEdDSA, verify: k}, nil
	case *rsa.PublicKey:
		return &Key{method: jwt.SigningMethodRS256, verify: k}, nil
	}
	return nil, fmt.Errorf("a %T cannot verify Ferry tokens: want Ed25519 or RSA", pub)
}

// Algorithm returns the JWT alg the key uses: "HS256", "EdDSA" or "RS256".
func (k *Key) Algorithm() string { return k.method.Alg() }

// LoadSecret reads an HS256 secret file, as [auth] jwt_secret_file: the
// file's bytes without surrounding white space, at least MinSecret.
func LoadSecret(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	secret := []byte(strings.TrimSpace(string(b)))
	if len(secret) < MinSecret {
		return nil, fmt.Errorf("%s holds %d bytes; an HS256 secret needs at least %d", path, len(secret), MinSecret)
	}
	return HS256(secret)
}

// LoadPublicKey reads a PEM public key file, as [auth]
// jwt_public_key_file: RSA (RS256) or Ed25519 (EdDSA).
func LoadPublicKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if k, err := jwt.ParseRSAPublicKeyFromPEM(b); err == nil {
		return PublicKey(k)
	}
	if k, err := jwt.ParseEdPublicKeyFromPEM(b); err == nil {
		return PublicKey(k)
	}
	return nil, fmt.Errorf("%s is not a PEM RSA or Ed25519 public key", path)
}

// LoadSigningKey reads a key that signs: a PEM Ed25519 private key
// (PKCS #8, as `openssl genpkey -algorithm ed25519` writes), or else an
// HS256 secret file as LoadSecret reads it.
func LoadSigningKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if strings.Contains(string(b), "-----BEGIN") {
		k, err := jwt.ParseEdPrivateKeyFromPEM(b)
		if err != nil {
			return nil, fmt.Errorf("%s is not a PEM Ed25519 private key: %v", path, err)
		}
		return EdDSA(k.(ed25519.PrivateKey))
	}
	return LoadSecret(path)
}

// Mint signs c with key. It refuses claims that the gateway would refuse:
// no exp, an exp already past, or neither services nor expose.
func Mint(key *Key, c Claims) (string, error) {
	if key.sign == nil {
		return "", errors.New("claims: the key is a public key: it verifies but cannot sign")
	}
	switch {
	case c.Expires.IsZero():
		return "", errors.New("claims: a token needs an expiry (exp)")
	case !c.Expires.After(time.Now()):
		return "", fmt.Errorf("claims: the expiry %s has passed", c.Expires.UTC().Format(time.RFC3339))
	case len(c.Services) == 0 && len(c.Expose) == 0:
		return "", errors.New("claims: a token needs services to open or names to expose")
	}
	w := wire{Services: c.Services, Expose: c.Expose}
	w.Subject = c.Subject
	w.Issuer = c.Issuer
	if len(c.Audience) > 0 {
		w.Audience = jwt.ClaimStrings(c.Audience)
	}
	w.ExpiresAt = jwt.NewNumericDate(c.Expires)
	if !c.IssuedAt.IsZero() {
		w.IssuedAt = jwt.NewNumericDate(c.IssuedAt)
	}
	return jwt.NewWithClaims(key.method, w).SignedString(key.sign)
}

// New returns claims for services that expire ttl from now, the short-lived
// scoped token a web backend gives a page.
func New(ttl time.Duration, services ...string) Claims {
	now := time.Now()
	return Claims{Services: services, Expires: now.Add(ttl), IssuedAt: now}
}

// Verifier checks tokens for a gateway.
type Verifier struct {
	key  *Key
	o    VerifyOptions
	opts []jwt.ParserOption
}

// VerifyOptions are the checks beyond the signature and exp.
type VerifyOptions struct {
	Audience string           // if set, aud must contain it
	Issuer   string           // if set, iss must equal it
	Now      func() time.Time // the clock; nil is time.Now
	Leeway   time.Duration    // clock skew allowed on exp and nbf
}

// NewVerifier returns a Verifier that accepts tokens signed by key.
func NewVerifier(key *Key, o VerifyOptions) *Verifier {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	v := &Verifier{key: key, o: o, opts: []jwt.ParserOption{
		jwt.WithValidMethods([]string{key.method.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(now),
		jwt.WithLeeway(o.Leeway),
	}}
	if o.Audience != "" {
		v.opts = append(v.opts, jwt.WithAudience(o.Audience))
	}
	if o.Issuer != "" {
		v.opts = append(v.opts, jwt.WithIssuer(o.Issuer))
	}
	return v
}

// LooksLikeJWT reports whether a token has the three dot-separated parts of
// a JWT; Ferry's static tokens are base64url and have no dots.
func LooksLikeJWT(tok string) bool { return strings.Count(tok, ".") == 2 }

// Verify checks a token and returns its claims, or an error that says why
// in words fit to show the client.
func (v *Verifier) Verify(tok string) (*Claims, error) {
	var w wire
	_, err := jwt.ParseWithClaims(tok, &w, func(*jwt.Token) (any, error) { return v.key.verify, nil }, v.opts...)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, errors.New("the token has expired")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		switch {
		case w.ExpiresAt == nil:
			return nil, errors.New("the token has no exp claim")
		case v.o.Issuer != "" && w.Issuer == "":
			return nil, errors.New("the token has no iss claim")
		default:
			return nil, errors.New("the token has no aud claim")
		}
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return nil, errors.New("the token is for another audience")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return nil, errors.New("the token is from another issuer")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return nil, errors.New("the token is not valid yet")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return nil, errors.New("the token's signature is not valid")
	case err != nil:
		return nil, errors.New("the token is not valid")
	}
	if w.Services == nil && w.Expose == nil {
		return nil, errors.New("the token has no services claim")
	}
	c := &Claims{
		Subject:  w.Subject,
		Services: w.Services,
		Expose:   w.Expose,
		Audience: w.Audience,
		Issuer:   w.Issuer,
		Expires:  w.ExpiresAt.Time,
	}
	if w.IssuedAt != nil {
		c.IssuedAt = w.IssuedAt.Time
	}
	return c, nil
}

// Name is what logs and per-token limits call a verified token: "jwt:" and
// its subject, or, without one, "jwt#" and a hash of the token, so that
// tokens without sub do not share one count.
func Name(tok string, c *Claims) string {
	if c.Subject != "" {
		return "jwt:" + c.Subject
	}
	sum := sha256.Sum256([]byte(tok))
	return "jwt#" + hex.EncodeToString(sum[:6])
}
