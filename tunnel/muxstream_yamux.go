//go:build !js

package tunnel

import (
	"github.com/hashicorp/yamux"
)

// Stream is a yamux stream as both sides of Ferry use it.
//
// CloseWrite is a half-close: yamux's Close sends FIN and reading goes on.
// Read reports ErrTunnelLost where yamux would report end of file for a
// stream whose session died, since yamux ends every stream of a dead
// session as if it had ended normally; so neither a client nor a backend
// mistakes a cut-off transfer for a whole one. (A stream that ended
// normally and whose session closed before its end of file was read also
// reports it: the gateway's graceful shutdown waits for streams to end,
// so this takes a reader slower than the shutdown.)
type Stream struct{ *yamux.Stream }

// CloseWrite ends the sending half.
func (s Stream) CloseWrite() error { return s.Stream.Close() }

// Read reads from the stream; see Stream for ErrTunnelLost.
func (s Stream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	return n, lostIfClosed(err, s.Stream.Session().IsClosed)
}
