package claims

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func must(k *Key, err error) *Key {
	if err != nil {
		panic(err)
	}
	return k
}

func TestMintVerify(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	hs := must(HS256(secret))
	ed := must(EdDSA(priv))
	edPub := must(PublicKey(priv.Public()))
	other := must(HS256([]byte(strings.Repeat("o", 32))))
	now := time.Now()
	hour := now.Add(time.Hour)

	tests := []struct {
		name    string
		sign    *Key
		verify  *Key
		claims  Claims
		opts    VerifyOptions
		wantErr string // from Verify
	}{
		{name: "hs256", sign: hs, verify: hs, claims: Claims{Services: []string{"redis"}, Expires: hour}},
		{name: "eddsa with the public key", sign: ed, verify: edPub, claims: Claims{Services: []string{"a", "b"}, Subject: "page-7", Expires: hour}},
		{name: "expose only", sign: ed, verify: ed, claims: Claims{Expose: []string{"laptop"}, Expires: hour}},
		{name: "audience and issuer", sign: hs, verify: hs, claims: Claims{Services: []string{"x"}, Audience: []string{"ferry"}, Issuer: "https://auth", Expires: hour}, opts: VerifyOptions{Audience: "ferry", Issuer: "https://auth"}},
		{name: "wrong audience", sign: hs, verify: hs, claims: Claims{Services: []string{"x"}, Audience: []string{"other"}, Expires: hour}, opts: VerifyOptions{Audience: "ferry"}, wantErr: "another audience"},
		{name: "missing issuer", sign: hs, verify: hs, claims: Claims{Services: []string{"x"}, Expires: hour}, opts: VerifyOptions{Issuer: "https://auth"}, wantErr: "no iss claim"},
		{name: "missing audience", sign: hs, verify: hs, claims: Claims{Services: []string{"x"}, Expires: hour}, opts: VerifyOptions{Audience: "ferry"}, wantErr: "no aud claim"},
		{name: "other issuer", sign: hs, verify: hs, claims: Claims{Services: []string{"x"}, Issuer: "https://evil", Expires: hour}, opts: VerifyOptions{Issuer: "https://auth"}, wantErr: "another issuer"},
		{name: "other secret", sign: hs, verify: other, claims: Claims{Services: []string{"x"}, Expires: hour}, wantErr: "signature is not valid"},
		{name: "other algorithm", sign: hs, verify: edPub, claims: Claims{Services: []string{"x"}, Expires: hour}, wantErr: "not valid"},
		{name: "expired by the verifier's clock", sign: hs, verify: hs, claims: Claims{Services: []string{"x"}, Expires: hour}, opts: VerifyOptions{Now: func() time.Time { return now.Add(2 * time.Hour) }}, wantErr: "has expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := Mint(tc.sign, tc.claims)
			if err != nil {
				t.Fatal(err)
			}
			if !LooksLikeJWT(tok) {
				t.Fatalf("%q does not look like a JWT", tok)
			}
			got, err := NewVerifier(tc.verify, tc.opts).Verify(tok)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Verify: %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Services, tc.claims.Services) || !slices.Equal(got.Expose, tc.claims.Expose) || got.Subject != tc.claims.Subject || got.Expires.Unix() != tc.claims.Expires.Unix() {
				t.Errorf("claims %+v, want %+v", got, tc.claims)
			}
		})
	}
}

func TestMintRefuses(t *testing.T) {
	hs := must(HS256([]byte(strings.Repeat("s", 32))))
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	pub := must(PublicKey(priv.Public()))
	for _, tc := range []struct {
		name string
		key  *Key
		c    Claims
		want string
	}{
		{"no exp", hs, Claims{Services: []string{"x"}}, "needs an expiry"},
		{"past exp", hs, Claims{Services: []string{"x"}, Expires: time.Now().Add(-time.Second)}, "has passed"},
		{"grants nothing", hs, Claims{Expires: time.Now().Add(time.Hour)}, "needs services"},
		{"public key", pub, New(time.Hour, "x"), "cannot sign"},
	} {
		if _, err := Mint(tc.key, tc.c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := HS256([]byte("short")); err == nil {
		t.Error("HS256 took a 5-byte secret")
	}
}

func TestLoadKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	privDER, _ := x509.MarshalPKCS8PrivateKey(priv)
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	privPath := write("ed.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))
	pubPath := write("ed.pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	rsaPath := write("rsa.pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaDER}))
	secretPath := write("secret", []byte(strings.Repeat("k", 40)+"\n"))
	shortPath := write("short", []byte("12345"))

	signer := must(LoadSigningKey(privPath))
	verifier := must(LoadPublicKey(pubPath))
	tok, err := Mint(signer, New(time.Minute, "redis"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewVerifier(verifier, VerifyOptions{}).Verify(tok); err != nil {
		t.Fatalf("a token minted with the PEM private key fails with its public key: %v", err)
	}
	if k := must(LoadPublicKey(rsaPath)); k.Algorithm() != "RS256" {
		t.Errorf("RSA key: %s", k.Algorithm())
	}
	hs := must(LoadSigningKey(secretPath))
	tok, _ = Mint(hs, New(time.Minute, "redis"))
	if _, err := NewVerifier(must(LoadSecret(secretPath)), VerifyOptions{}).Verify(tok); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		load func(string) (*Key, error)
		path string
		want string
	}{
		{LoadSecret, shortPath, "holds 5 bytes"},
		{LoadSecret, filepath.Join(dir, "nope"), "no such file"},
		{LoadPublicKey, secretPath, "not a PEM RSA or Ed25519 public key"},
		{LoadSigningKey, pubPath, "not a PEM Ed25519 private key"},
	} {
		if _, err := tc.load(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", filepath.Base(tc.path), err, tc.want)
		}
	}
}

func TestName(t *testing.T) {
	if n := Name("a.b.c", &Claims{Subject: "bob"}); n != "jwt:bob" {
		t.Error(n)
	}
	a, b := Name("a.b.c", &Claims{}), Name("a.b.d", &Claims{})
	if a == b || !strings.HasPrefix(a, "jwt#") {
		t.Errorf("%s %s", a, b)
	}
}
