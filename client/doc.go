// Package client is Ferry's Go client: it connects to a gateway's tunnel
// URL, runs one yamux session over the WebSocket, and opens one stream per
// TCP connection to a named service (Dial), or forwards a local listener to
// a service (Forward). When the WebSocket dies the session reconnects with
// jittered backoff; a Dial made meanwhile waits for it, up to its context.
//
// The package is transport-agnostic: Options.Dialer yields the byte stream
// that yamux runs on. Outside js/wasm the default is the native WebSocket of
// package tunnel; the browser build passes one over the browser's own
// WebSocket.
package client
