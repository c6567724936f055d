// Package tests holds Ferry's end-to-end tests across packages and
// processes. Its interop tests run the WebSocket of package tunnel against
// third-party implementations: Python `websockets` and node `ws`, whose peer
// scripts live in tests/interop. A missing peer skips its tests, except
// under CI=true, where it fails them.
package tests
