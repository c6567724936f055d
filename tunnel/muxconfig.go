package tunnel

import (
	"io"
	"time"

	"github.com/hashicorp/yamux"
)

// MuxConfig returns the yamux settings Ferry uses on both sides:
//
//   - MaxStreamWindowSize 1 MiB: yamux's 256 KiB default caps one stream
//     at a window per round trip; with 1 MiB one stream moves about 0.8×
//     what a bare two-relay chain does on loopback (scripts/bench-tunnel),
//     while bounding what a slow reader can make the other side buffer.
//   - keepalive every keepalive (the gateway's [server] keepalive), so
//     idle tunnels survive proxies that cut idle connections and a dead
//     peer is found;
//   - ConnectionWriteTimeout 10 s: a peer that stops reading for that long
//     is dead.
//   - AcceptBacklog 256 (yamux's default), streams opened and not yet
//     accepted; the gateway accepts at once and refuses streams over its
//     own limit with a readable status, whereas a full backlog makes yamux
//     reset the stream without a word.
func MuxConfig(keepalive time.Duration) *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.MaxStreamWindowSize = 1 << 20
	cfg.EnableKeepAlive = keepalive > 0
	if keepalive > 0 {
		cfg.KeepAliveInterval = keepalive
	}
	cfg.ConnectionWriteTimeout = 10 * time.Second
	cfg.AcceptBacklog = 256
	cfg.LogOutput = io.Discard
	return cfg
}
