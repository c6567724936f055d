// Package tests holds Ferry's end-to-end tests across packages and
// processes. Its interop tests run the WebSocket of package tunnel against
// third-party implementations: Python `websockets` and node `ws`, whose peer
// scripts live in tests/interop, without compression and with
// permessage-deflate under every combination of its parameters that each
// peer supports (deflate_interop_test.go); and headless Chromium, which
// round-trips compressed messages with our server from a page
// (chromium_test.go). A missing peer or browser skips its tests, except
// under CI=true, where it fails them.
package tests
