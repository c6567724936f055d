//go:build js && wasm

package main

import (
	"encoding/binary"
	"errors"
	"syscall/js"
	"time"

	"github.com/ferrygw/ferry/tunnel"
)

// The page's keepalive: the liveness ping a new tunnel is proven with,
// and the pings that find a gateway that stopped answering.

// livenessPingID is the opaque value of the yamux ping the dialer sends to
// prove a new tunnel alive. The client's yamux, which starts its own ping
// IDs at 0, ignores the answer.
const livenessPingID = 0x46657272 // "Ferr"

// ping sends a yamux ping with livenessPingID between two frames: now, or
// once the frame being written is whole.
func (c *wsConn) ping() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.frame.have > 0 {
		c.pingPending = true
		return
	}
	c.sendPing()
}

// sendPing sends the ping; c.wmu is held, between two frames.
func (c *wsConn) sendPing() {
	var ping [yamuxHeaderSize]byte
	ping[1] = yamuxTypePing
	binary.BigEndian.PutUint16(ping[2:], yamuxFlagSYN)
	binary.BigEndian.PutUint32(ping[8:], livenessPingID)
	msg := uint8Array.New(yamuxHeaderSize)
	js.CopyBytesToJS(msg, ping[:])
	c.ws.Call("send", msg)
}

// keepAliveReason begins the reason of a tunnel that KeepAlive found dead,
// in the words of the native client's (tunnel.KeepAliveReason, which the
// js build does not have).
const keepAliveReason = "keepalive timeout"

var errKeepAlive = errors.New("tunnel: " + keepAliveReason)

// KeepAlive checks that the gateway is alive until the tunnel ends; the
// client runs it for each tunnel. A page cannot send WebSocket pings, so
// whenever interval passes with no message from the gateway it sends a
// yamux ping, which the gateway's yamux answers; when another interval
// passes with still nothing received, the gateway is dead (stopped, or a
// network that dropped the connection without a word): the tunnel ends
// with failure, and Err, giving 1011 and keepAliveReason, as the
// native client's does. Any message counts as life, so a busy tunnel is
// never pinged.
func (c *wsConn) KeepAlive(interval time.Duration) error {
	if interval <= 0 {
		<-c.done
		return nil
	}
	t := time.NewTimer(interval)
	defer t.Stop()
	seen := c.receivedCount()
	pinged := false
	for {
		select {
		case <-c.done:
			return nil
		case <-t.C:
		}
		if r := c.receivedCount(); r != seen {
			seen, pinged = r, false // the gateway spoke: it is alive
			t.Reset(interval)
			continue
		}
		if !pinged {
			pinged = true
			c.ping()
			t.Reset(interval)
			continue
		}
		reason := keepAliveReason + ": no answer from the gateway for " + (2 * interval).String()
		c.failWith(&CloseError{Code: int(tunnel.StatusInternalError), Reason: reason, Opened: true, Here: true})
		return errKeepAlive
	}
}

func (c *wsConn) receivedCount() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.received
}
