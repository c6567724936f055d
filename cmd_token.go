package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

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

func runToken(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "new" {
		fmt.Fprint(stderr, "Usage: ferry token new [-name N] [-services a,b]\n")
		return 2
	}
	fs := flag.NewFlagSet("ferry token new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "a name for the token, shown in logs and refusals")
	services := fs.String("services", "", "comma-separated `services` the token may open")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	var svcs []string
	for _, s := range strings.Split(*services, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !config.ValidServiceName(s) {
			fmt.Fprintf(stderr, "ferry token new: %q is not a service name (lowercase letters, digits, . _ -)\n", s)
			return 2
		}
		svcs = append(svcs, strconv.Quote(s))
	}
	token, sum := newToken()
	fmt.Fprintln(stdout, token)
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, "# Paste into gateway.toml; the gateway stores only the hash.")
	fmt.Fprintln(stdout, "[[tokens]]")
	if *name != "" {
		fmt.Fprintf(stdout, "name = %s\n", strconv.Quote(*name))
	}
	fmt.Fprintf(stdout, "sha256 = %q\n", sum)
	fmt.Fprintf(stdout, "services = [%s]\n", strings.Join(svcs, ", "))
	return 0
}
