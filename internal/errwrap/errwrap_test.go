package errwrap

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestWrapReadsAsErrorf(t *testing.T) {
	for _, tc := range []struct {
		err error
		msg string
	}{
		{io.EOF, "client: open redis"},
		{errors.New("x: y"), ""},
	} {
		got := Wrap(tc.err, tc.msg)
		want := fmt.Errorf("%s: %w", tc.msg, tc.err)
		if got.Error() != want.Error() || !errors.Is(got, tc.err) {
			t.Errorf("Wrap(%v, %q) = %q (Is %v), want %q", tc.err, tc.msg, got, errors.Is(got, tc.err), want)
		}
	}
}
