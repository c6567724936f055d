package gateway

import (
	"net/http"
	"time"
)

// What an HTTP connection of the public listener may hold without making
// progress: the request head gets ReadHeaderTimeout (handshake_timeout);
// a keep-alive connection between requests gets httpIdleTimeout; a page or
// asset response gets a write deadline of writeFloor plus its size at
// writeRate, so a client that asks for the multi-MB client.wasm and reads
// nothing is cut off.
//
// There is no http.Server WriteTimeout. It would spare tunnels (net/http's
// Hijack, which tunnel.Accept calls, clears the connection's deadlines),
// but one duration cannot fit both a small page and client.wasm on a slow
// link. Tests change these through export_test.go.
var (
	httpIdleTimeout = 60 * time.Second
	writeFloor      = 30 * time.Second
	writeRate       = float64(32 << 10) // bytes per second
)

// boundWrite sets a write deadline on the response w for a body of size
// bytes. net/http flushes what it still buffers under that deadline once
// the handler returns, then clears it (Go 1.26 server.go, after
// finishRequest), so it does not carry over to the next request on a
// keep-alive connection. A ResponseWriter without deadlines (a test
// recorder) is left as it is.
func boundWrite(w http.ResponseWriter, size int64) {
	d := writeFloor + time.Duration(float64(size)/writeRate*float64(time.Second))
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
}
