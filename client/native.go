//go:build !js

package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"

	"github.com/ferrygw/ferry/compress"
	"github.com/ferrygw/ferry/tunnel"
)

// NativeOptions configures the native WebSocket dialer.
type NativeOptions struct {
	// TLSConfig for wss:// (RootCAs, a pinned certificate check...).
	TLSConfig *tls.Config
	// Proxy picks an HTTP CONNECT proxy; nil uses HTTPS_PROXY/NO_PROXY.
	Proxy func(*http.Request) (*url.URL, error)
	// NoCompression turns permessage-deflate off.
	NoCompression bool
}

// nativeDialer returns a Dialer over tunnel.Dial with opts' credential,
// headers, TLS and proxy settings.
func nativeDialer(opts *Options) (func(ctx context.Context, url string) (net.Conn, error), error) {
	header := http.Header{}
	for k, vs := range opts.Header {
		header[k] = append([]string(nil), vs...)
	}
	if opts.Token != "" {
		header.Set("Authorization", "Bearer "+opts.Token)
	}
	dopts := &tunnel.DialOptions{
		HTTPHeader:   header,
		Subprotocols: []string{tunnel.Subprotocol},
		TLSConfig:    opts.Native.TLSConfig,
		Proxy:        opts.Native.Proxy,
		// The gateway's limit bounds what it sends; the client accepts the
		// largest message yamux produces with a 1 MiB window, and more.
		ReadLimit: 64 << 20,
	}
	if !opts.Native.NoCompression {
		dopts.Compression = &compress.Options{}
	}
	return func(ctx context.Context, u string) (net.Conn, error) {
		c, resp, err := tunnel.Dial(ctx, u, dopts)
		if err != nil {
			if resp != nil {
				return nil, &RefusedError{Status: resp.StatusCode, Err: err}
			}
			return nil, err
		}
		if c.Subprotocol() != tunnel.Subprotocol {
			c.CloseNow()
			return nil, fmt.Errorf("client: %s is not a Ferry gateway (subprotocol %q)", u, c.Subprotocol())
		}
		return c.StreamConn(), nil
	}, nil
}

// RefusedError is a handshake the gateway answered with an HTTP error.
type RefusedError struct {
	Status int
	Err    error
}

func (e *RefusedError) Error() string { return e.Err.Error() }

// Permanent reports whether retrying cannot help: the credential was
// refused (401) or the request is forbidden (403).
func (e *RefusedError) Permanent() bool { return e.Status == 401 || e.Status == 403 }
func (e *RefusedError) Unwrap() error   { return e.Err }
