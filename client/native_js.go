package client

import (
	"context"
	"errors"
)

// NativeOptions is empty in js/wasm builds: they have no native WebSocket
// (a browser's own WebSocket does TLS and compression), so Options.Dialer
// must be set.
type NativeOptions struct{}

func nativeDialer(*Options) (func(ctx context.Context, url string) (TunnelConn, error), error) {
	return nil, errors.New("client: js/wasm has no native WebSocket dialer: set Options.Dialer")
}
