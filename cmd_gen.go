package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferrygw/ferry/gateway/config"
	"github.com/ferrygw/ferry/gen"
)

const genUsage = `Usage: ferry gen (-config FILE | -from URL) -lang ts|go|json -out DIR [-package NAME] [-ferry-js URL] [-check]

Generates a client SDK from a gateway's services: TypeScript (ferry-sdk.js,
ferry-sdk.d.ts and a copy of ferry.d.ts), Go (ferry_sdk.go) or the JSON
catalog (services.json). docs/SDK.md tells how to use them.

Flags:
`

func runGen(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ferry gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, genUsage)
		fs.PrintDefaults()
	}
	cfgPath := fs.String("config", "", "the gateway's config `FILE` (every service, private ones too)")
	from := fs.String("from", "", "a running gateway's catalog `URL`, .../ferry/services.json (its public services)")
	lang := fs.String("lang", "", "the language: ts, go or json")
	out := fs.String("out", "", "the output `DIR`, created if missing")
	pkg := fs.String("package", "", "the Go package `NAME` (default: the output folder's name)")
	ferryJS := fs.String("ferry-js", "./ferry.js", "where the TypeScript module imports the browser client from: a `URL`, absolute or relative to the module")
	check := fs.Bool("check", false, "write nothing: exit 1 and say which files differ when DIR is not what ferry gen would write")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // -h: the usage was asked for
		}
		return 2
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "ferry gen: "+format+"\n", args...)
		return 2
	}
	switch {
	case fs.NArg() > 0:
		return fail("unexpected argument %q (flags only; see ferry gen -h)", fs.Arg(0))
	case (*cfgPath == "") == (*from == ""):
		return fail("give one of -config FILE and -from URL")
	case *lang == "":
		return fail("-lang is required: ts, go or json")
	case *out == "":
		return fail("-out DIR is required")
	}
	o := gen.Options{Lang: *lang, Package: *pkg, FerryJS: *ferryJS}
	if o.Lang == "go" && o.Package == "" {
		abs, err := filepath.Abs(*out)
		if err != nil {
			return fail("%v", err)
		}
		o.Package = gen.PackageFor(abs)
	}

	var cat *gen.Catalog
	var source string
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintf(stderr, "ferry gen: %v\n", err)
			return 2
		}
		if cat, err = gen.FromConfig(cfg, false); err != nil {
			return fail("%s: %v", *cfgPath, err)
		}
		source = *cfgPath
	} else {
		u, err := catalogURL(*from)
		if err != nil {
			return fail("-from: %v", err)
		}
		if cat, err = fetchCatalog(ctx, u); err != nil {
			return fail("%s: %v", u, err)
		}
		source = u
	}
	files, err := gen.Generate(cat, o)
	if err != nil {
		return fail("%v", err)
	}

	if *check {
		stale := gen.Stale(*out, files)
		if len(stale) > 0 {
			fmt.Fprintf(stderr, "ferry gen -check: %s is stale for %s:\n", *out, source)
			for _, s := range stale {
				fmt.Fprintf(stderr, "  %s\n", s)
			}
			fmt.Fprintf(stderr, "regenerate with the same command without -check\n")
			return 1
		}
		fmt.Fprintf(stderr, "ferry gen -check: %s is current (%d files, %d services)\n", *out, len(files), len(cat.Services))
		return 0
	}
	if err := writeFiles(*out, files); err != nil {
		return fail("-out: %v", err)
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name
	}
	fmt.Fprintf(stderr, "ferry gen: wrote %s in %s (%d services from %s)\n", strings.Join(names, ", "), *out, len(cat.Services), source)
	return 0
}

// catalogURL turns -from into the catalog's http(s) URL: ws(s) becomes
// http(s), and a URL with no path gets /ferry/services.json.
func catalogURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	case "http", "https":
	default:
		return "", fmt.Errorf("%q is not an http:, https:, ws: or wss: URL", s)
	}
	if u.Host == "" {
		return "", fmt.Errorf("%q has no host", s)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/ferry/services.json"
	}
	return u.String(), nil
}

// fetchCatalog GETs and parses a gateway's catalog.
func fetchCatalog(ctx context.Context, u string) (*gen.Catalog, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	return gen.ParseCatalog(body)
}

// writeFiles writes files into dir, each through a temporary file and a
// rename, so a reader never sees half a file.
func writeFiles(dir string, files []gen.File) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		tmp, err := os.CreateTemp(dir, "."+f.Name+".tmp*")
		if err != nil {
			return err
		}
		_, err = tmp.Write(f.Data)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(tmp.Name(), 0o644)
		}
		if err == nil {
			err = os.Rename(tmp.Name(), filepath.Join(dir, f.Name))
		}
		if err != nil {
			os.Remove(tmp.Name())
			return err
		}
	}
	return nil
}
