//go:build !linux

package main

import "io"

// terminalWidth reports no terminal outside Linux: status changes are
// plain lines there.
func terminalWidth(io.Writer) (int, bool) { return 0, false }
