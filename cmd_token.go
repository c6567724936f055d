package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ferrygw/ferry/claims"
	"github.com/ferrygw/ferry/gateway/config"
)

// newToken returns a fresh token (32 random bytes, base64url: characters
// that fit in a header token) and the hex SHA-256 the config stores.
func newToken() (token, sum string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	token = base64.RawURLEncoding.EncodeToString(b[:])
	h := sha256.Sum256([]byte(token))
	return token, hex.EncodeToString(h[:])
}

const tokenUsage = `Usage:
  ferry token new [-name N] [-services a,b] [-expose c]
  ferry token jwt (-secret-file FILE | -key-file FILE) [-services a,b] [-expose c] -ttl D [-sub S] [-aud A] [-iss I]

'new' makes a static token: the token alone on standard output (so that
'> alice.token' writes a file for -token-file) and the [[tokens]] block to
paste into gateway.toml on standard error.

'jwt' mints a signed token (a JWT) that a gateway with [auth]
jwt_secret_file or jwt_public_key_file accepts until it expires.

Run 'ferry token new -h' or 'ferry token jwt -h' for their flags.
`

func runToken(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "ferry token: missing subcommand (new or jwt)\n\n"+tokenUsage)
		return 2
	}
	switch args[0] {
	case "new":
		return runTokenNew(args[1:], stdout, stderr)
	case "jwt":
		return runTokenJWT(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, tokenUsage)
		return 0
	}
	fmt.Fprintf(stderr, "ferry token: unknown subcommand %q (want new or jwt)\n\n%s", args[0], tokenUsage)
	return 2
}

// serviceList parses a -services or -expose value: comma-separated
// service names, each checked against the gateway's name pattern.
func serviceList(flagName, v string) ([]string, error) {
	var names []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !config.ValidServiceName(s) {
			return nil, fmt.Errorf("-%s: %q is not a service name (lowercase letters, digits, . _ -)", flagName, s)
		}
		names = append(names, s)
	}
	return names, nil
}

// quoteList formats names as a TOML array of strings.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// grantFlags are the -services and -expose flags of both token commands.
type grantFlags struct{ services, expose string }

func (g *grantFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.services, "services", "", "comma-separated `a,b`: the services the token may open")
	fs.StringVar(&g.expose, "expose", "", "comma-separated `c,d`: the services the token may expose (reverse tunnels)")
}

// parse checks both lists; warn tells of a token that grants nothing but
// public services.
func (g *grantFlags) parse(cmd string, stderr io.Writer) (services, expose []string, err error) {
	if services, err = serviceList("services", g.services); err != nil {
		return nil, nil, err
	}
	if expose, err = serviceList("expose", g.expose); err != nil {
		return nil, nil, err
	}
	if len(services) == 0 && len(expose) == 0 {
		fmt.Fprintf(stderr, "%s: warning: -services and -expose are both empty: the token opens only public services\n", cmd)
	}
	return services, expose, nil
}

func runTokenNew(args []string, stdout, stderr io.Writer) int {
	const cmd = "ferry token new"
	fs := newFlagSet(cmd)
	name := fs.String("name", "", "a `NAME` for the token, shown in logs and refusals")
	var g grantFlags
	g.register(fs)
	usage := "Usage: ferry token new [-name N] [-services a,b] [-expose c]\n\nPrints a new token alone on standard output and, on standard error, the\n[[tokens]] block (with the token's SHA-256, never the token) to paste into\ngateway.toml:\n  ferry token new -name alice -services redis > alice.token\n"
	if code, ok := parseFlags(fs, args, usage, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", cmd, fs.Arg(0))
		return 2
	}
	services, expose, err := g.parse(cmd, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return 2
	}
	token, sum := newToken()
	fmt.Fprintln(stdout, token)
	var b strings.Builder
	b.WriteString("# Paste into gateway.toml; the gateway stores only the hash.\n[[tokens]]\n")
	if *name != "" {
		fmt.Fprintf(&b, "name = %s\n", strconv.Quote(*name))
	}
	fmt.Fprintf(&b, "sha256 = %q\n", sum)
	fmt.Fprintf(&b, "services = %s\n", quoteList(services))
	if len(expose) > 0 {
		fmt.Fprintf(&b, "expose = %s\n", quoteList(expose))
	}
	fmt.Fprint(stderr, b.String())
	return 0
}

func runTokenJWT(args []string, stdout, stderr io.Writer) int {
	const cmd = "ferry token jwt"
	fs := newFlagSet(cmd)
	secretFile := fs.String("secret-file", "", "sign with the HS256 secret in `FILE` (the gateway's [auth] jwt_secret_file)")
	keyFile := fs.String("key-file", "", "sign with the PEM Ed25519 private key in `FILE` (EdDSA; the gateway's jwt_public_key_file holds its public key)")
	var g grantFlags
	g.register(fs)
	ttl := fs.Duration("ttl", 0, "the token expires `D` from now, e.g. 10m or 24h (required)")
	sub := fs.String("sub", "", "the subject `S`: who the token is for, shown in the gateway's logs")
	aud := fs.String("aud", "", "the audience `A` (comma-separated for several), checked by [auth] jwt_audience")
	iss := fs.String("iss", "", "the issuer `I`, checked by [auth] jwt_issuer")
	usage := "Usage: ferry token jwt (-secret-file FILE | -key-file FILE) [-services a,b] [-expose c] -ttl D [-sub S] [-aud A] [-iss I]\n\nMints a signed token (a JWT) with the claims the gateway checks and prints it\nalone on standard output; its expiry goes to standard error.\n"
	if code, ok := parseFlags(fs, args, usage, stdout, stderr); !ok {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, cmd+": "+format+"\n", a...)
		return 2
	}
	switch {
	case fs.NArg() != 0:
		return fail("unexpected argument %q", fs.Arg(0))
	case *secretFile == "" && *keyFile == "":
		return fail("missing -secret-file FILE or -key-file FILE")
	case *secretFile != "" && *keyFile != "":
		return fail("-secret-file and -key-file: give one")
	case *ttl == 0:
		return fail("missing -ttl D (how long the token is valid, e.g. 10m)")
	case *ttl < 0:
		return fail("-ttl %s: want a positive duration", *ttl)
	}
	services, expose, err := g.parse(cmd, stderr)
	if err != nil {
		return fail("%v", err)
	}
	if len(services) == 0 && len(expose) == 0 {
		return fail("a signed token needs -services or -expose (the gateway refuses one that grants nothing)")
	}
	var key *claims.Key
	if *secretFile != "" {
		key, err = claims.LoadSecret(*secretFile)
	} else {
		key, err = claims.LoadSigningKey(*keyFile)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return 1
	}
	c := claims.New(*ttl, services...)
	c.Expose, c.Subject, c.Issuer = expose, *sub, *iss
	if *aud != "" {
		for _, a := range strings.Split(*aud, ",") {
			if a = strings.TrimSpace(a); a != "" {
				c.Audience = append(c.Audience, a)
			}
		}
	}
	tok, err := claims.Mint(key, c)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return 1
	}
	fmt.Fprintln(stdout, tok)
	fmt.Fprintf(stderr, "# %s token, expires %s\n", key.Algorithm(), c.Expires.UTC().Format(time.RFC3339))
	return 0
}

// readTokenFile reads a -token-file: the token and, at most, a trailing
// line break. A file that holds more (the whole output of an older
// `ferry token new`, a config block, two tokens) is refused with what it
// found, never with the file's content, which may be a secret.
func readTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("-token-file: %w", err)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("-token-file %s is empty", path)
	}
	if n := strings.Count(s, "\n") + 1; n > 1 {
		return "", fmt.Errorf("-token-file %s holds %d lines; it must hold only the token (write it with `ferry token new > %s`, which prints the [[tokens]] block on standard error)", path, n, path)
	}
	for i, r := range s {
		if !tokenChar(r) {
			return "", fmt.Errorf("-token-file %s: character %d is %s; a token holds only letters, digits, - _ and, in a signed token, dots", path, i+1, describeRune(r))
		}
	}
	return s, nil
}

// tokenChar reports whether r may appear in a token: base64url, and the
// dots of a JWT.
func tokenChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
}

func describeRune(r rune) string {
	switch r {
	case ' ':
		return "a space"
	case '\t':
		return "a tab"
	case '\r':
		return "a carriage return"
	}
	return strconv.QuoteRune(r)
}
