//go:build !js

package client_test

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/tunnel"
)

// TestExposerDialsOnlyItsService: a gateway that asks an exposer for a
// service other than the one it registered is refused (status 1), and
// the local address is never dialed for it; the registered one is
// connected to the local address.
func TestExposerDialsOnlyItsService(t *testing.T) {
	g := startFake(t, "A", nil)
	dialed := make(chan struct{}, 4)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dialed <- struct{}{}
			io.WriteString(c, "local")
			c.Close()
		}
	}()
	s, err := client.Connect(context.Background(), g.url, &client.Options{MinBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g.next(t) // the Session's own tunnel
	l, err := s.Expose(context.Background(), "laptop", &client.ExposeOptions{ID: "t"})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); l.ServeTCP(ln.Addr().String(), 5*time.Second, nil) }()
	defer func() { l.Close(); <-served }()
	exp := g.next(t) // the exposer's own tunnel
	open := func(service string) (tunnel.OpenStatus, string, string) {
		t.Helper()
		st, err := exp.mux.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		req, _ := tunnel.AppendOpenRequest(nil, service)
		st.Write(req)
		status, msg, err := tunnel.ReadOpenResponse(st)
		if err != nil {
			t.Fatal(err)
		}
		rest, _ := io.ReadAll(st)
		return status, msg, string(rest)
	}
	if status, msg, _ := open("db"); status != tunnel.OpenUnknownService || !strings.Contains(msg, "exposes only laptop") {
		t.Fatalf("a crafted request for db: %v %q", status, msg)
	}
	select {
	case <-dialed:
		t.Fatal("the exposer dialed its local address for another service")
	default:
	}
	if status, _, rest := open("laptop"); status != tunnel.OpenOK || rest != "local" {
		t.Fatalf("the registered service: %v %q", status, rest)
	}
}
