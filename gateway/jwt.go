package gateway

import (
	"fmt"
	"time"

	"github.com/ferrygw/ferry/claims"
	"github.com/ferrygw/ferry/gateway/config"
)

// jwtVerifier checks signed tokens with the key named by [auth]; package
// claims holds the rules, shared with the SDK runtime that mints tokens.
type jwtVerifier struct{ v *claims.Verifier }

// newJWTVerifier loads the key named by auth, or returns nil when signed
// tokens are not configured.
func newJWTVerifier(auth config.Auth, now func() time.Time) (*jwtVerifier, error) {
	var key *claims.Key
	var err error
	switch {
	case auth.JWTSecretFile != "":
		if key, err = claims.LoadSecret(auth.JWTSecretFile); err != nil {
			return nil, fmt.Errorf("auth.jwt_secret_file: %w", err)
		}
	case auth.JWTPublicKeyFile != "":
		if key, err = claims.LoadPublicKey(auth.JWTPublicKeyFile); err != nil {
			return nil, fmt.Errorf("auth.jwt_public_key_file: %w", err)
		}
	default:
		return nil, nil
	}
	return &jwtVerifier{claims.NewVerifier(key, claims.VerifyOptions{
		Audience: auth.JWTAudience,
		Issuer:   auth.JWTIssuer,
		Now:      now,
		Leeway:   5 * time.Second,
	})}, nil
}

// verify checks a JWT and returns its credential, or an error that says
// why, fit to show the client.
func (v *jwtVerifier) verify(tok string) (*credential, error) {
	c, err := v.v.Verify(tok)
	if err != nil {
		return nil, err
	}
	cred := &credential{name: claims.Name(tok, c), services: map[string]bool{}, expires: c.Expires, label: "jwt"}
	for _, s := range c.Services {
		cred.services[s] = true
	}
	cred.expose = map[string]bool{}
	for _, s := range c.Expose {
		cred.expose[s] = true
	}
	return cred, nil
}
