package gen

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Languages are the values of Options.Lang.
var Languages = []string{"ts", "go", "json"}

// Options say what Generate writes.
type Options struct {
	// Lang is "ts", "go" or "json".
	Lang string
	// Package is the Go package name (Go only; required).
	Package string
	// FerryJS is where the TypeScript module imports the browser client
	// from: a URL, absolute or relative to the module; "" is "./ferry.js".
	FerryJS string
	// Live makes the TypeScript module the one a gateway serves at
	// /ferry/sdk.js: it imports ./ferry.js and takes its default tunnel
	// URL from its own import.meta.url, so it works from the gateway's
	// origin and, when CORS allows, imported from another.
	Live bool
}

// File is one generated file.
type File struct {
	Name string // a base name, no folder
	Data []byte
}

// The names of the generated files.
const (
	TSModule   = "ferry-sdk.js"
	TSTypes    = "ferry-sdk.d.ts"
	FerryTypes = "ferry.d.ts"
	GoFile     = "ferry_sdk.go"
	JSONFile   = "services.json"
)

// Generate writes the SDK of c in o.Lang, its files sorted by name.
func Generate(c *Catalog, o Options) ([]File, error) {
	var files []File
	switch o.Lang {
	case "ts":
		ferryJS := o.FerryJS
		if ferryJS == "" || o.Live {
			ferryJS = "./ferry.js"
		}
		files = []File{
			{TSModule, tsModule(c, ferryJS, o.Live)},
			{TSTypes, tsTypes(c)},
			{FerryTypes, ferryTypes()},
		}
	case "go":
		if !goPackageName(o.Package) {
			return nil, fmt.Errorf("-package %q is not a Go package name: want lowercase letters, digits and _, starting with a letter", o.Package)
		}
		src, err := goFile(c, o.Package)
		if err != nil {
			return nil, err
		}
		files = []File{{GoFile, src}}
	case "json":
		files = []File{{JSONFile, c.JSON()}}
	default:
		return nil, fmt.Errorf("unknown language %q: want %s", o.Lang, strings.Join(Languages, ", "))
	}
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	return files, nil
}

// goPackageName reports whether s is a conventional Go package name.
func goPackageName(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return !slices.Contains(goKeywords, s)
}

var goKeywords = []string{
	"break", "case", "chan", "const", "continue", "default", "defer", "else",
	"fallthrough", "for", "func", "go", "goto", "if", "import", "interface",
	"map", "package", "range", "return", "select", "struct", "switch", "type", "var",
}

// PackageFor returns the default Go package name for an output folder:
// its base name in lowercase, with characters outside [a-z0-9_] dropped.
func PackageFor(dir string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(filepath.Base(dir)) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// mapping writes the name-to-identifier table as comment lines, each
// after prefix.
func mapping(c *Catalog, prefix string, lang func(Identifiers) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%sService names map to identifiers thus (docs/SDK.md): split on every\n", prefix)
	fmt.Fprintf(&b, "%scharacter outside [a-z0-9]; camelCase in TypeScript, PascalCase in Go;\n", prefix)
	fmt.Fprintf(&b, "%s%q (TypeScript) or %q (Go) before a leading digit, and %q\n", prefix, DigitPrefixTS, DigitPrefixGo, ReservedSuffix)
	fmt.Fprintf(&b, "%safter a name that the client already has as a member:\n", prefix)
	fmt.Fprintf(&b, "%s\n", strings.TrimRight(prefix, " "))
	if len(c.Services) == 0 {
		fmt.Fprintf(&b, "%s(This catalog has no services.)\n", prefix)
	}
	w := 0
	for _, s := range c.Services {
		w = max(w, len(s.Name))
	}
	for _, s := range c.Services {
		fmt.Fprintf(&b, "%s  %-*s  %s\n", prefix, w, s.Name, lang(s.Identifiers))
	}
	return b.String()
}

// Stale compares files with what dir holds and returns a line for each
// file that is missing or differs ("ferry-sdk.js: differs from line 12"),
// or nil when dir is current.
func Stale(dir string, files []File) []string {
	var stale []string
	for _, f := range files {
		have, err := os.ReadFile(filepath.Join(dir, f.Name))
		switch {
		case errors.Is(err, os.ErrNotExist):
			stale = append(stale, f.Name+": missing")
		case err != nil:
			stale = append(stale, fmt.Sprintf("%s: %v", f.Name, err))
		case !bytes.Equal(have, f.Data):
			stale = append(stale, fmt.Sprintf("%s: differs from line %d", f.Name, firstDiffLine(have, f.Data)))
		}
	}
	return stale
}

// firstDiffLine returns the 1-based line of the first difference.
func firstDiffLine(a, b []byte) int {
	line := 1
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			break
		}
		if a[i] == '\n' {
			line++
		}
	}
	return line
}
