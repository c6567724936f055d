package gen

import (
	"fmt"
	"strings"
)

// Service names (1 to 63 of a-z, 0-9, ".", "_", "-") become identifiers
// by one algorithm, which the JSON catalog publishes and docs/SDK.md
// describes:
//
//  1. split the name on every character outside [a-z0-9], dropping empty
//     parts;
//  2. TypeScript: the first part as it is, each later one with its first
//     letter upper-cased (camelCase); Go: every part so (PascalCase);
//  3. if the result starts with a digit, put DigitPrefix before it
//     ("service" in TypeScript, "Service" in Go);
//  4. if the result is a member the SDK's own object already has
//     (ReservedTS, ReservedGo), put ReservedSuffix after it.
//
// Two services that end at one identifier are an error.
const (
	DigitPrefixTS  = "service"
	DigitPrefixGo  = "Service"
	ReservedSuffix = "Service"
)

// ReservedTS are the members of a TypeScript SDK's client object, and of
// every JavaScript object, that a service method may not shadow: the
// Gateway's url, dial and close; then, which would make `await connect()`
// treat the client as a promise; constructor; and Object.prototype's
// methods.
var ReservedTS = []string{
	"close", "constructor", "dial", "hasOwnProperty", "isPrototypeOf",
	"propertyIsEnumerable", "then", "toLocaleString", "toString", "url",
	"valueOf",
}

// ReservedGo are the generated Go package's own names that a service
// method may not take: the Client type's methods Close, Dial and Session,
// and the function Connect.
var ReservedGo = []string{"Close", "Connect", "Dial", "Session"}

// nameParts splits a service name on every character outside [a-z0-9].
func nameParts(name string) []string {
	return strings.FieldsFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	})
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// ident joins a name's parts: camelCase, or PascalCase when pascal, with
// the digit prefix and the reserved suffix applied.
func ident(name string, pascal bool, prefix string, reserved []string) string {
	var b strings.Builder
	for i, p := range nameParts(name) {
		if i > 0 || pascal {
			p = upperFirst(p)
		}
		b.WriteString(p)
	}
	id := b.String()
	if id != "" && id[0] >= '0' && id[0] <= '9' {
		id = prefix + id
	}
	for _, r := range reserved {
		if id == r {
			id += ReservedSuffix
			break
		}
	}
	return id
}

// TSIdent returns the TypeScript method name of a service.
func TSIdent(name string) string { return ident(name, false, DigitPrefixTS, ReservedTS) }

// GoIdent returns the Go method name of a service.
func GoIdent(name string) string { return ident(name, true, DigitPrefixGo, ReservedGo) }

// checkIdents fails when two services map to one identifier in a
// language, or when a name has no letter or digit at all.
func checkIdents(svcs []Service) error {
	var errs []string
	for _, lang := range []struct {
		name string
		id   func(Identifiers) string
	}{
		{"TypeScript", func(i Identifiers) string { return i.TypeScript }},
		{"Go", func(i Identifiers) string { return i.Go }},
	} {
		seen := map[string]string{}
		for _, s := range svcs {
			id := lang.id(s.Identifiers)
			if id == "" {
				errs = append(errs, fmt.Sprintf("service %q: the name has no letter or digit to make a %s identifier of", s.Name, lang.name))
				continue
			}
			if other, dup := seen[id]; dup {
				errs = append(errs, fmt.Sprintf("services %q and %q both map to the %s identifier %s: rename one", other, s.Name, lang.name, id))
				continue
			}
			seen[id] = s.Name
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}
