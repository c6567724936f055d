package tunnel

import (
	"errors"
	"io"
)

// ErrTunnelLost is returned by a Stream's Read in place of end of file when
// the tunnel died before the stream ended: what arrived may be cut short.
var ErrTunnelLost = errors.New("tunnel: the tunnel closed before the stream ended; data may be missing")

// lostIfClosed is a Stream's Read error: ErrTunnelLost in place of end of
// file when the session is closed.
func lostIfClosed(err error, closed func() bool) error {
	if err == io.EOF && closed() {
		return ErrTunnelLost
	}
	return err
}
