// Package errwrap makes the errors that fmt.Errorf("msg: %w", err) makes,
// without fmt: the browser build of the client links no fmt, whose
// printer (with reflect) weighs about 100 KB of compressed wasm.
package errwrap

// Wrap returns an error that reads msg + ": " + err.Error() and unwraps
// to err.
func Wrap(err error, msg string) error { return &wrapped{msg, err} }

type wrapped struct {
	msg string
	err error
}

func (e *wrapped) Error() string { return e.msg + ": " + e.err.Error() }
func (e *wrapped) Unwrap() error { return e.err }
