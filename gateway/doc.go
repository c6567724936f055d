// Package gateway is Ferry's server: it accepts WebSocket tunnels at the
// configured path, checks each client's credential, runs one yamux session
// per tunnel, and for each stream checks the service against the
// credential, dials the backend and pipes bytes both ways, with half-closes
// passed through. It also serves /healthz and the demo page, and shuts down
// gracefully: it stops accepting, lets open streams finish up to the drain
// timeout, then closes every tunnel with 1001.
package gateway
