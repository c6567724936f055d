//go:build !js

package client

import (
	"context"
	"net"
	"sync"

	"github.com/ferrygw/ferry/tunnel"
)

// Forward accepts connections on ln and pipes each through a new stream to
// service, like ssh -L, until ctx ends or ln fails. Each connection's
// half-closes cross the tunnel. A refused stream, or a connection that
// waited Options.Wait for a tunnel in vain (a *NoTunnelError), closes the
// local connection; onError, when set, is told why.
func (s *Session) Forward(ctx context.Context, ln net.Listener, service string, onError func(error)) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		lc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer lc.Close()
			dctx, cancel := context.WithTimeout(ctx, s.opts.Wait)
			rc, err := s.Dial(dctx, service)
			cancel()
			if err != nil {
				if onError != nil {
					onError(err)
				}
				return
			}
			defer rc.Close()
			tunnel.Pipe(lc, rc)
		}()
	}
}
