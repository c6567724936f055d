// Package tunnel is Ferry's wire: a strict RFC 6455 WebSocket, both server
// (Accept) and client (Dial), with the hooks that the permessage-deflate
// extension and the yamux byte-stream adapter build on.
//
// A Conn reads and writes whole messages (Read, Write), streams large ones
// (Reader, Writer), answers pings, runs the closing handshake of RFC 6455
// section 7 and offers a net.Conn view of its binary messages (NetConn).
// Every frame a peer sends is checked: a violation fails the connection with
// the close code the RFC names (1002 protocol error, 1007 invalid payload,
// 1009 too big) and the caller gets a *CloseError; no byte sequence panics.
//
// Concurrency: one goroutine may read at a time; any number may write, and
// writes are serialised on one writer path. Control frames (pong, close) may
// be sent between the fragments of a message being written.
//
// For yamux, StreamConn gives the byte stream of binary messages (MuxConn),
// one message per yamux frame, with what yamux v0.1.2 lacks: ResetStream
// resets one stream on both ends, and KeepAlive finds dead peers with
// WebSocket pings that count any progress as life. MuxConfig sets every
// yamux timer in one place; Stream adds a half-close and reports a lost
// tunnel as ErrTunnelLost rather than end of file; Pipe joins a stream and
// a backend.
package tunnel
