package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ferrygw/ferry/gateway/config"
	"github.com/golang-jwt/jwt/v5"
)

// jwtVerifier checks signed tokens: HS256 with a shared secret, or RS256 /
// EdDSA with a public key, from [auth].
type jwtVerifier struct {
	key     any // []byte secret, *rsa.PublicKey or ed25519.PublicKey
	methods []string
	opts    []jwt.ParserOption
	now     func() time.Time
}

// ferryClaims are the claims a Ferry JWT carries: the registered ones,
// of which exp is required, and the services it may open.
type ferryClaims struct {
	jwt.RegisteredClaims
	Services []string `json:"services"`
}

// newJWTVerifier loads the key named by auth, or returns nil when signed
// tokens are not configured.
func newJWTVerifier(auth config.Auth, now func() time.Time) (*jwtVerifier, error) {
	v := &jwtVerifier{now: now}
	switch {
	case auth.JWTSecretFile != "":
		b, err := os.ReadFile(auth.JWTSecretFile)
		if err != nil {
			return nil, fmt.Errorf("auth.jwt_secret_file: %w", err)
		}
		secret := []byte(strings.TrimSpace(string(b)))
		if len(secret) < 32 {
			return nil, fmt.Errorf("auth.jwt_secret_file: %s holds %d bytes; an HS256 secret needs at least 32", auth.JWTSecretFile, len(secret))
		}
		v.key, v.methods = secret, []string{"HS256"}
	case auth.JWTPublicKeyFile != "":
		b, err := os.ReadFile(auth.JWTPublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("auth.jwt_public_key_file: %w", err)
		}
		if k, err := jwt.ParseRSAPublicKeyFromPEM(b); err == nil {
			v.key, v.methods = k, []string{"RS256"}
		} else if k, err := jwt.ParseEdPublicKeyFromPEM(b); err == nil {
			v.key, v.methods = k, []string{"EdDSA"}
		} else {
			return nil, fmt.Errorf("auth.jwt_public_key_file: %s is not a PEM RSA or Ed25519 public key", auth.JWTPublicKeyFile)
		}
	default:
		return nil, nil
	}
	v.opts = []jwt.ParserOption{
		jwt.WithValidMethods(v.methods),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(now),
		jwt.WithLeeway(5 * time.Second),
	}
	if auth.JWTAudience != "" {
		v.opts = append(v.opts, jwt.WithAudience(auth.JWTAudience))
	}
	if auth.JWTIssuer != "" {
		v.opts = append(v.opts, jwt.WithIssuer(auth.JWTIssuer))
	}
	return v, nil
}

// looksLikeJWT reports whether a token has the three dot-separated parts
// of a JWT; static tokens are base64url and have no dots.
func looksLikeJWT(tok string) bool { return strings.Count(tok, ".") == 2 }

// verify checks a JWT and returns its credential, or an error that says
// why, fit to show the client.
func (v *jwtVerifier) verify(tok string) (*credential, error) {
	var claims ferryClaims
	_, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return v.key, nil }, v.opts...)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, errors.New("the token has expired")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return nil, errors.New("the token has no exp claim")
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
	if claims.Services == nil {
		return nil, errors.New("the token has no services claim")
	}
	// The name keys the per-token session limit: the subject when there
	// is one, else the token itself (hashed), so that tokens without sub
	// do not share one count.
	name := "jwt:" + claims.Subject
	if claims.Subject == "" {
		sum := sha256.Sum256([]byte(tok))
		name = "jwt#" + hex.EncodeToString(sum[:6])
	}
	c := &credential{name: name, services: map[string]bool{}, expires: claims.ExpiresAt.Time}
	for _, s := range claims.Services {
		c.services[s] = true
	}
	return c, nil
}
