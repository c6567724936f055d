//go:build !js

package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/gateway"
	"github.com/ferrygw/ferry/gateway/config"
	"github.com/ferrygw/ferry/tunnel"
)

// silentListener accepts TCP connections and never answers, like `nc -l`
// or a half-dead load balancer; the connections are closed when the test
// ends.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// noYamux upgrades to a WebSocket with Ferry's subprotocol and then never
// reads: a gateway that answers the upgrade and not the tunnel.
func noYamux(t *testing.T) string {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := tunnel.Accept(w, r, &tunnel.AcceptOptions{Subprotocols: []string{tunnel.Subprotocol}})
		if err != nil {
			return
		}
		<-release
		c.CloseNow()
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/tunnel"
}

// TestTimeoutNamesPhase: a peer that stops answering in any phase of
// connecting fails Connect within the timeout, and the error names the
// phase.
func TestTimeoutNamesPhase(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	silent := silentListener(t)
	proxy := func(u string) func(*http.Request) (*url.URL, error) {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		return http.ProxyURL(pu)
	}
	tests := []struct {
		name, url, phase string
		native           client.NativeOptions
	}{
		{"accepts and never answers", "ws://" + silent + "/tunnel", "HTTP upgrade", client.NativeOptions{}},
		{"wss to a silent listener", "wss://" + silent + "/tunnel", "TLS", client.NativeOptions{}},
		{"silent proxy", "ws://127.0.0.1:1/tunnel", "proxy CONNECT", client.NativeOptions{Proxy: proxy("http://" + silent)}},
		{"https proxy URL for a plain proxy", "ws://127.0.0.1:1/tunnel", "proxy CONNECT", client.NativeOptions{Proxy: proxy("https://" + silent)}},
		{"upgrade without yamux", noYamux(t), "first yamux round trip", client.NativeOptions{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			_, err := client.Connect(context.Background(), tt.url, &client.Options{Timeout: timeout, Native: tt.native})
			took := time.Since(start)
			var te *client.TimeoutError
			if !errors.As(err, &te) || te.Phase != tt.phase {
				t.Fatalf("Connect: %v, want a timeout in %q", err, tt.phase)
			}
			if !strings.Contains(err.Error(), tt.phase) || !strings.Contains(err.Error(), timeout.String()) {
				t.Errorf("the error %q does not name the phase and the timeout", err)
			}
			if took < timeout || took > timeout+2*time.Second {
				t.Errorf("Connect gave up after %s, want about %s", took, timeout)
			}
		})
	}
}

// TestCustomDialerTimeout: a custom Dialer that never returns is bounded
// as one phase, "dial".
func TestCustomDialerTimeout(t *testing.T) {
	t.Parallel()
	_, err := client.Connect(context.Background(), "ws://x/tunnel", &client.Options{
		Timeout: 100 * time.Millisecond,
		Dialer: func(ctx context.Context, _ string) (net.Conn, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		},
	})
	var te *client.TimeoutError
	if !errors.As(err, &te) || te.Phase != "dial" {
		t.Fatalf("Connect: %v, want a timeout in the dial", err)
	}
}

// TestRetryAtStart: with RetryAtStart, Connect returns while the gateway
// is still down, and a Dial waits for the tunnel that comes up later.
func TestRetryAtStart(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // down at start
	failed := make(chan client.Status, 1)
	s, err := client.Connect(context.Background(), "ws://"+addr+"/tunnel", &client.Options{
		RetryAtStart: true, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		OnStatus: func(st client.Status) {
			if st.State == client.Reconnecting {
				select {
				case failed <- st:
				default:
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := <-failed
	if st.Err == nil || !strings.Contains(st.Err.Error(), "refused") || st.Delay <= 0 {
		t.Errorf("the first failed attempt's status: %+v", st)
	}
	srv, err := gateway.New(config.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { srv.Serve(ln); close(served) }()
	defer func() {
		s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := s.Dial(ctx, "echo")
	if err != nil {
		t.Fatalf("Dial once the gateway is up: %v", err)
	}
	c.Close()
}

// certSwitch serves a gateway over TLS with a certificate that can be
// replaced, and closes every tunnel when it is.
type certSwitch struct {
	mu    sync.Mutex
	cert  *tls.Certificate
	conns []net.Conn
	net.Listener
}

func (c *certSwitch) Accept() (net.Conn, error) {
	nc, err := c.Listener.Accept()
	if err == nil {
		c.mu.Lock()
		c.conns = append(c.conns, nc)
		c.mu.Unlock()
	}
	return nc, err
}

func (c *certSwitch) swap(cert *tls.Certificate) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cert = cert
	for _, nc := range c.conns {
		nc.Close()
	}
	c.conns = nil
}

// TestPinMismatchIsPermanent: a gateway whose certificate changes after
// the first connection no longer matches the pin, and the Session stops
// at once rather than retrying for ever: a Closed status with a
// *CertificateError, and Dials fail.
func TestPinMismatchIsPermanent(t *testing.T) {
	t.Parallel()
	certA, fpA, err := gateway.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	certB, _, err := gateway.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sw := &certSwitch{cert: &certA, Listener: ln}
	tl := tls.NewListener(sw, &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		sw.mu.Lock()
		defer sw.mu.Unlock()
		return sw.cert, nil
	}})
	srv, err := gateway.New(config.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { srv.Serve(tl); close(served) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	}()
	pinned, err := client.PinnedTLS(fpA)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	var attempts atomic.Int32
	s, err := client.Connect(context.Background(), "wss://"+ln.Addr().String()+"/tunnel", &client.Options{
		Native:     client.NativeOptions{TLSConfig: pinned},
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond,
		OnStatus: func(st client.Status) {
			switch st.State {
			case client.Reconnecting:
				attempts.Add(1)
			case client.Closed:
				closed <- st.Err
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sw.swap(&certB)
	err = <-closed
	var ce *client.CertificateError
	var pe *client.PinMismatchError
	if !errors.As(err, &ce) || !errors.As(err, &pe) {
		t.Fatalf("Closed with %v, want a pin mismatch", err)
	}
	if n := attempts.Load(); n > 2 {
		t.Errorf("%d reconnection reports before giving up, want the loss and at most one attempt", n)
	}
	if _, err := s.Dial(context.Background(), "echo"); !errors.As(err, &ce) {
		t.Errorf("Dial after the pin mismatch: %v", err)
	}
}
