// Package tests holds Ferry's end-to-end tests across packages and
// processes. Its interop tests run the WebSocket of package tunnel against
// third-party implementations: Python `websockets` and node `ws`, whose peer
// scripts live in tests/interop, without compression and with
// permessage-deflate under every combination of its parameters that each
// peer supports (deflate_interop_test.go); and headless Chromium, which
// round-trips compressed messages with our server from a page
// (chromium_test.go) and reads the gateway's 4401/4429 refusals
// (refusal_browser_test.go). The end-to-end tests run the real ferry binary
// with redis-server and PostgreSQL 15 behind it (e2e_test.go), and the
// browser client in Chromium: 32 parallel streams, reconnection, Redis with
// a JWT, backpressure (wasm_browser_test.go). A missing peer, server or
// browser skips its tests, except under CI=true, where it fails them.
package tests
