//go:build !js

package tunnel

import (
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"
)

// TestStartKeepAlive: against a peer that never answers, the timer's
// keepalive pings once, then closes with 1011 and calls dead; stopped at
// once, it sends nothing.
func TestStartKeepAlive(t *testing.T) {
	t.Parallel()
	t.Run("dead peer", func(t *testing.T) {
		t.Parallel()
		c, peer := rawPeer(t, false, 1<<20)
		dead := make(chan struct{}, 2)
		stop := c.StreamConn().StartKeepAlive(20*time.Millisecond, func() { dead <- struct{}{} })
		defer stop()
		if op, _ := readRawFrame(t, peer); op != OpPing {
			t.Fatalf("first frame %v, want a ping", op)
		}
		op, p := readRawFrame(t, peer)
		if op != OpClose || len(p) < 2 || binary.BigEndian.Uint16(p) != uint16(StatusInternalError) {
			t.Fatalf("then %v %q, want a close with 1011", op, p)
		}
		<-c.Done()
		<-dead // called right after the close, on the timer's goroutine
		stop()
		if len(dead) != 0 {
			t.Error("dead called twice")
		}
	})
	t.Run("stopped", func(t *testing.T) {
		t.Parallel()
		c, peer := rawPeer(t, false, 1<<20)
		stop := c.StreamConn().StartKeepAlive(20*time.Millisecond, func() { t.Error("dead called after stop") })
		stop()
		_ = peer.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		var b [1]byte
		var ne net.Error
		if n, err := peer.Read(b[:]); n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("a stopped keepalive sent something: %d bytes, %v", n, err)
		}
	})
}
