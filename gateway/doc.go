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
package gateway
