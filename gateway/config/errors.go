package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem in a config file: where it is, which key, and what is
// wrong. Line and Column count from 1; 0 means unknown. Column counts bytes
// and points at the value (or, for an unknown key, at the key).
type Error struct {
	File   string // the file given to Parse or Load; "" for the embedded default
	Line   int    // 1-based line, 0 if unknown
	Column int    // 1-based byte column, 0 if unknown
	Key    string // full key path, e.g. "services.redis.backend" or "tokens[1].sha256"
	Msg    string // what is wrong, without the location
}

// Error formats e as "file:line:col: key: msg", leaving out the column when
// it is 0, the line and column when the line is unknown, and the file or key
// when they are empty.
func (e *Error) Error() string {
	var b strings.Builder
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
		if e.Column > 0 {
			loc += ":" + strconv.Itoa(e.Column)
		}
		loc = strings.TrimPrefix(loc, ":")
	}
	if loc != "" {
		b.WriteString(loc)
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one config, in file order. Parse, Load
// and Validate return an Errors (never an empty one) when anything is wrong.
type Errors []*Error

// Error joins the errors, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the errors, so that errors.As finds an *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sortErrors orders errors by position; errors without a line keep their
// order and come last.
func sortErrors(es Errors) {
	slices.SortStableFunc(es, func(a, b *Error) int {
		if (a.Line == 0) != (b.Line == 0) {
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		if c := cmp.Compare(a.Line, b.Line); c != 0 {
			return c
		}
		return cmp.Compare(a.Column, b.Column)
	})
}
