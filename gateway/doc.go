// Package gateway is Ferry's server: it accepts WebSocket tunnels at the
// configured path, checks each handshake (handshakes in progress, Origin,
// subprotocol, rate per address, credential, session limits), runs one
// yamux session per tunnel, and for each stream checks the service against
// the credential, resolves and checks the backend's addresses against
// [network] deny, dials it and pipes bytes both ways, with half-closes
// passed through. It also serves /healthz, the browser client under
// /ferry/, the live demo page at /, and, on [admin] listen, /metrics and
// /readyz. It shuts down gracefully: it stops accepting, lets open streams
// finish up to the drain timeout, then closes every tunnel with 1001.
//
// Lifecycle: no stream outlives its session, whose end aborts every
// backend connection of it; a stream the gateway has closed and the client
// has not is drained, then reset (the reaper, which replaces yamux's own
// close timer so that a half-close may last as long as the stream); a
// silent peer is pinged, and a dead one closed with 1011; a session whose
// signed token expires is closed with 4401. Memory: every session and
// stream reserves its worst case against [limits] buffer_budget before it
// is granted (budget.go, config.Config.SessionWorst), and what does not fit
// is refused as busy.
package gateway
