//go:build js && wasm

// Command wasm is Ferry's browser client, built as client.wasm by
// scripts/build-wasm: package client, with its yamux session and stream
// open protocol, running over the browser's own WebSocket (which already
// does TLS and permessage-deflate, so this build links no net/http,
// crypto/tls or flate). Its yamux is tunnel/ymux, the same wire as the
// gateway's hashicorp/yamux in a fraction of the weight, and it links no
// fmt, log, net or os either: scripts/build-wasm -sizes shows what each
// package weighs, and wasm/build's tests hold client.wasm to 900 KB
// gzip'ed and 640 KB brotli'ed.
//
// It is loaded by ferry.js (the public ES module; ferry.d.ts types it) and
// hands ferry.js a small internal API of functions that never block: each
// one that waits takes the resolve and reject functions of a Promise that
// ferry.js made, and settles them from a goroutine, since a js.FuncOf
// callback that blocks on the network would stall the event loop that
// delivers the network's events. ferry.js turns streams into
// ReadableStream and WritableStream objects; this side keeps the state:
// the Session of each connect and the Conn of each dial, by number.
//
// Buffering is bounded end to end: the browser's WebSocket cannot be
// paused, but what the gateway may send is bounded by yamux's windows
// (1 MiB per stream), the Go side reads a stream only when the page pulls
// from its ReadableStream, and a write settles only once yamux has taken
// it, so a WritableStream's writer waits while a stream's window is full.
//
// A browser cannot read an HTTP refusal of a WebSocket handshake, so the
// gateway refuses a page's credential by accepting the WebSocket and closing
// it at once with 4401, 4403 or 4429 and a reason. To tell such a close from
// a tunnel that dies later, the dialer proves the tunnel alive before it
// returns it: it sends a yamux ping (which the gateway's yamux answers and
// the client's yamux ignores as an answer to no ping of its own) and waits
// for the first message or the close. The same ping keeps a tunnel honest
// afterwards (wsConn.KeepAlive): a page cannot send WebSocket pings, so
// after a silence it sends a yamux ping, and a gateway silent for as long
// again (stopped, or cut off without a word) ends the tunnel with 1011
// "keepalive timeout", which onstatus reports.
//
// Dials take a context (ferry.js's AbortSignal and timeout); an aborted
// or timed-out dial leaves nothing: the Session closes the stream of an
// open it gave up on, and a socket that arrives too late is closed.
package main
