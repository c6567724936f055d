// Package client is Ferry's Go client: it connects to a gateway's tunnel
// URL, runs one yamux session over the WebSocket, and opens one stream per
// TCP connection to a named service (Dial), or forwards a local listener to
// a service (Forward). When the WebSocket dies the session reconnects with
// jittered backoff; a Dial made meanwhile waits for it, up to its context.
//
// A gateway that drains is left at once, without backoff: on its yamux
// GoAway the session dials a new tunnel to the same URL (behind a load
// balancer, another gateway), opens new streams there, keeps the old
// tunnel until its streams end and then closes it with 1000; a tunnel
// closed with 1001 "going away" is redialed at once too. yamux v0.1.2
// records a GoAway without telling its owner, so the session follows the
// frames yamux reads and sees the GoAway as yamux does; an OpenStream
// failing with yamux.ErrRemoteGoAway is treated the same way.
//
// The package is transport-agnostic: Options.Dialer yields the byte stream
// that yamux runs on. Outside js/wasm the default is the native WebSocket of
// package tunnel; the browser build passes one over the browser's own
// WebSocket.
package client
