package framing

import (
	"errors"
	"fmt"
)

// ErrTooLarge is wrapped by the error of a Send whose message is over the
// connection's max, and by the error that ends receiving when the peer
// sends such a message.
var ErrTooLarge = errors.New("framing: message is over max_message")

// ErrInvalidUTF8 is wrapped by the error of a LinesConn Send whose message
// is not valid UTF-8, and by the error that ends receiving when a received
// line is not.
var ErrInvalidUTF8 = errors.New("framing: message is not valid UTF-8")

// ErrNewline is wrapped by the error of a LinesConn Send whose message
// contains "\n".
var ErrNewline = errors.New("framing: message contains a newline")

// ErrBroken is wrapped by the error of a Send interrupted (by its context or
// an I/O error) after part of its message was written, and by the errors of
// every Send after it: the peer holds a partial message, so the stream can
// carry no more.
var ErrBroken = errors.New("framing: sending is broken by an interrupted Send")

// detailError is an error with its own text that matches a sentinel (or
// io.ErrUnexpectedEOF) with errors.Is.
type detailError struct {
	msg string
	err error
}

func (e *detailError) Error() string { return e.msg }
func (e *detailError) Unwrap() error { return e.err }

// tooLarge is the ErrTooLarge of a message of size bytes, to send or
// received (then with more set when only its first size bytes are known).
func tooLarge(received, more bool, size int64, max int) error {
	var msg string
	switch {
	case !received:
		msg = fmt.Sprintf("framing: message of %d bytes is over max_message (%d)", size, max)
	case more:
		msg = fmt.Sprintf("framing: received message is over max_message (%d): no newline in its first %d bytes", max, size)
	default:
		msg = fmt.Sprintf("framing: received message of %d bytes is over max_message (%d)", size, max)
	}
	return &detailError{msg: msg, err: ErrTooLarge}
}

// invalidUTF8 is the ErrInvalidUTF8 of a message, to send or received, whose
// first bad byte is at offset at.
func invalidUTF8(received bool, at, size int) error {
	what := "message to send"
	if received {
		what = "received message"
	}
	return &detailError{
		msg: fmt.Sprintf("framing: %s is not valid UTF-8 (bad byte at offset %d of %d)", what, at, size),
		err: ErrInvalidUTF8,
	}
}
