//go:build !js

package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
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
	// Proxy picks an HTTP CONNECT proxy (an http:// one, or an https://
	// one, reached over TLS); nil uses the environment as net/http does:
	// HTTP_PROXY for ws://, HTTPS_PROXY for wss://, and NO_PROXY.
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
	timeout := opts.Timeout
	return func(ctx context.Context, u string) (net.Conn, error) {
		// Each step gets its own timeout, and a step that takes longer
		// is named in the error.
		pt := newPhaseTimer(ctx, timeout)
		defer pt.stop()
		d := *dopts
		d.Phase = pt.begin
		c, resp, err := tunnel.Dial(pt.ctx, u, &d)
		if err != nil {
			if te := pt.timedOut(); te != nil && ctx.Err() == nil {
				return nil, te
			}
			if resp != nil {
				return nil, &RefusedError{Status: resp.StatusCode, Err: err}
			}
			if ce := certificateError(err); ce != nil {
				return nil, ce
			}
			return nil, err
		}
		if c.Subprotocol() != tunnel.Subprotocol {
			c.CloseNow()
			return nil, fmt.Errorf("client: %s is not a Ferry gateway (subprotocol %q)", u, c.Subprotocol())
		}
		return &limitsConn{MuxConn: c.StreamConn(), limits: resp.Header.Get(LimitsHeader)}, nil
	}, nil
}

// limitsConn is the native tunnel with the Ferry-Limits header of its 101
// response.
type limitsConn struct {
	*tunnel.MuxConn
	limits string
}

func (c *limitsConn) FerryLimits() string { return c.limits }

// CertificateError is a TLS handshake that failed because the gateway's
// certificate is not the one trusted: signed by an unknown authority, for
// another host name, or not matching the pin. Retrying cannot help, so it
// is permanent, after the first connection as before it.
type CertificateError struct {
	Err error // the x509 error, or a *PinMismatchError
}

func (e *CertificateError) Error() string {
	return "client: the gateway's certificate is not trusted: " + e.Err.Error()
}
func (e *CertificateError) Unwrap() error   { return e.Err }
func (e *CertificateError) Permanent() bool { return true }

// certificateError returns err as a *CertificateError when it is one, or
// nil. An expired or not yet valid certificate is not one: it may be
// renewed, or the clock fixed, while the client retries.
func certificateError(err error) error {
	var pe *PinMismatchError
	if errors.As(err, &pe) {
		return &CertificateError{Err: pe}
	}
	var ve *tls.CertificateVerificationError
	if !errors.As(err, &ve) {
		return nil
	}
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	if errors.As(ve.Err, &ua) || errors.As(ve.Err, &he) {
		return &CertificateError{Err: ve.Err}
	}
	return nil
}
