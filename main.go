// Command ferry carries TCP streams over WebSocket.
//
// Usage:
//
//	ferry serve [-config FILE] [-listen ADDR] [-check]
//	ferry forward [client flags] TUNNEL_URL LISTEN=SERVICE...
//	ferry forward -config client.toml [client flags] [PROFILE]
//	ferry connect [client flags] TUNNEL_URL SERVICE
//	ferry token new [-name N] [-services a,b] [-expose c]
//	ferry token jwt (-secret-file FILE | -key-file FILE) -services a,b [-expose c] -ttl D
//	ferry gen (-config FILE | -from URL) -lang ts|go|json -out DIR [-package NAME] [-ferry-js URL] [-check]
//	ferry version
//	ferry help [COMMAND]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
)

// version and commit are set at build time with
// -ldflags "-X main.version=v1.2.3 -X main.commit=abc123".
var (
	version = ""
	commit  = ""
)

const usage = `Ferry carries TCP streams over WebSocket.

Usage:
  ferry <command> [flags] [arguments]

Commands:
  serve      run the gateway (embedded default config unless -config)
  forward    forward local ports to services through a gateway, like ssh -L
  connect    pipe standard input and output to one service (ssh ProxyCommand)
  expose     publish local services through a gateway, like ssh -R
  token      make a token: ferry token new [-name N] [-services a,b] > FILE,
             or a signed one: ferry token jwt -secret-file F -services a,b -ttl 1h
  gen        generate a TypeScript, Go or JSON SDK from the gateway's services
  version    print the version, commit and Go version
  help       print this help, or a command's: ferry help COMMAND

Run 'ferry <command> -h' (or 'ferry help <command>') for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, os.Stdin, stdout, stderr)
}

func runContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && args[0] == "help" {
			// ferry help CMD is ferry CMD -h, by construction.
			return runContext(ctx, []string{args[1], "-h"}, stdin, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "forward":
		return runForward(ctx, args[1:], stdout, stderr)
	case "connect":
		return runConnect(ctx, args[1:], stdin, stdout, stderr)
	case "expose":
		return runExpose(ctx, args[1:], stdout, stderr)
	case "token":
		return runToken(args[1:], stdout, stderr)
	case "gen":
		return runGen(ctx, args[1:], stdout, stderr)
	case "version":
		fs := flag.NewFlagSet("ferry version", flag.ContinueOnError)
		fs.SetOutput(stderr)
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		fmt.Fprintln(stdout, versionLine())
		return 0
	}
	fmt.Fprintf(stderr, "ferry: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// newFlagSet returns a FlagSet for a command that parseFlags parses.
func newFlagSet(cmd string) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.Usage = func() {} // parseFlags prints the usage, on the stream that fits
	return fs
}

// parseFlags parses args with fs. Asked for help (-h), it prints usage and
// the flags on stdout and returns (0, false); on a bad flag it prints the
// problem, usage and flags on stderr and returns (2, false).
func parseFlags(fs *flag.FlagSet, args []string, usage string, stdout, stderr io.Writer) (int, bool) {
	fs.SetOutput(stderr)
	err := fs.Parse(args)
	if err == nil {
		return 0, true
	}
	w, code := stderr, 2
	if errors.Is(err, flag.ErrHelp) {
		w, code = stdout, 0
	} else {
		fmt.Fprintln(stderr)
	}
	printUsage(fs, usage, w)
	return code, false
}

// printUsage prints usage, then fs's flags, on w.
func printUsage(fs *flag.FlagSet, usage string, w io.Writer) {
	fmt.Fprint(w, usage)
	if hasFlags(fs) {
		fmt.Fprint(w, "\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// versionLine reports the version and commit from -ldflags -X, else from the
// build info, else "devel", and the Go version.
func versionLine() string {
	v, c := version, commit
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && c == "" {
				c = s.Value
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	if c == "" {
		c = "unknown"
	}
	return fmt.Sprintf("ferry %s (commit %s, %s %s/%s)", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
