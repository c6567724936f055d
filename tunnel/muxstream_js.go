//go:build js

package tunnel

import (
	"github.com/ferrygw/ferry/tunnel/ymux"
)

// Stream is a yamux stream as the browser build of the client uses it, a
// stream of tunnel/ymux (which speaks yamux's wire in less code and ends
// streams as hashicorp/yamux does); see muxstream_yamux.go for what its
// CloseWrite and Read do.
type Stream struct{ *ymux.Stream }

// CloseWrite ends the sending half.
func (s Stream) CloseWrite() error { return s.Stream.Close() }

// Read reads from the stream; see Stream for ErrTunnelLost.
func (s Stream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	return n, lostIfClosed(err, s.Stream.Session().IsClosed)
}
