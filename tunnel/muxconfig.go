//go:build !js

package tunnel

import (
	"io"
	"math"
	"time"

	"github.com/hashicorp/yamux"
)

// noTimeout stands for "never" in yamux's timers.
const noTimeout = time.Duration(math.MaxInt64)

// MuxConfig returns the yamux settings Ferry uses on both sides, with a
// receive window of window bytes per stream (at least MinWindow). Every
// yamux timer is set here, deliberately, and docs/PROTOCOL.md §5 says
// what each means for a peer:
//
//   - StreamCloseTimeout 0 (off). yamux's Close is Ferry's half-close,
//     and a half-close may last as long as the stream does (a batch job
//     answering after minutes, ssh with stdin at end of file). yamux's
//     timer would end such a stream, turning the bytes still to come into
//     a clean end of file or a reset. Streams that one side has given up
//     on and the other never closes are reaped by their owner instead
//     (the gateway's reaper: drain for a while, then ResetStream).
//   - StreamOpenTimeout 0 (off). yamux would close the whole session when
//     one SYN is not acknowledged in time; on a slow link the ACK waits
//     behind queued data. A dead peer is found by the keepalive below,
//     and a caller bounds its own dial with a context.
//   - EnableKeepAlive false. yamux's ping waits in the send queue behind
//     data frames and then for a pong within ConnectionWriteTimeout, so a
//     slow but live link with busy streams would be declared dead.
//     Liveness is checked with WebSocket pings instead (Conn.KeepAlive),
//     which go out between frames and count any progress as life. yamux
//     still answers a peer's yamux pings.
//   - ConnectionWriteTimeout never. yamux applies it to every stream
//     write and window update waiting in its send queue; when it fires
//     the write fails while its frame may still go out, and the stream
//     then ends as if closed normally. Backpressure must wait instead.
//   - AcceptBacklog 256 (yamux's default): streams opened and not yet
//     accepted; the gateway accepts at once and refuses streams over its
//     own limits with a readable status, whereas a full backlog makes
//     yamux reset the stream without a word.
func MuxConfig(window uint32) *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.MaxStreamWindowSize = max(window, MinWindow)
	cfg.StreamCloseTimeout = 0
	cfg.StreamOpenTimeout = 0
	cfg.EnableKeepAlive = false
	cfg.KeepAliveInterval = noTimeout // unused; VerifyConfig wants it set
	cfg.ConnectionWriteTimeout = noTimeout
	cfg.AcceptBacklog = 256
	cfg.LogOutput = io.Discard
	return cfg
}
