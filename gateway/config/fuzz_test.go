package config

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// FuzzParse checks that no input panics Parse, that a config Parse accepts
// passes Validate, and that every error names its file and, when it names a
// key, the line of that key. The seeds are in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add(defaultTOML)
	if data, err := os.ReadFile(exampleFile); err == nil {
		f.Add(data)
	}
	for _, tt := range parseErrorTests {
		f.Add([]byte(tt.src))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data)
		if err == nil {
			if c == nil {
				t.Fatal("Parse returned neither a config nor an error")
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("Parse accepted a config that Validate rejects:\n%v", err)
			}
			return
		}
		if c != nil {
			t.Fatal("Parse returned a config with an error")
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("Parse error is %T, want a non-empty Errors: %v", err, err)
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		for _, e := range errs {
			if e.File != "fuzz.toml" || e.Msg == "" || e.Line < 0 || e.Line > lines || e.Column < 0 {
				t.Fatalf("error out of place: %#v (file has %d lines)", e, lines)
			}
			if e.Key != "" && e.Line == 0 {
				t.Fatalf("error about a key without a line: %v", e)
			}
		}
	})
}
