package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferrygw/ferry/gateway/config"
	"github.com/ferrygw/ferry/tunnel"
)

// builtinEcho is the backend name of the built-in echo service.
const builtinEcho = "builtin:echo"

// dialBackend connects to a service's backend within the dial timeout and
// maps failures to an open status with a readable message.
func (s *Server) dialBackend(ctx context.Context, cfg *config.Config, svc *config.Service) (net.Conn, tunnel.OpenStatus, string) {
	if strings.HasPrefix(svc.Backend, "builtin:") {
		if svc.Backend != builtinEcho {
			return nil, tunnel.OpenUnreachable, "unknown built-in backend " + svc.Backend
		}
		return newEchoConn(), tunnel.OpenOK, ""
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Limits.DialTimeout.Duration)
	defer cancel()
	addrs, status, msg := s.resolveBackend(ctx, cfg, svc)
	if status != tunnel.OpenOK {
		return nil, status, msg
	}
	var err error
	for _, a := range addrs {
		// Dial the address that was checked, not the name: a second
		// lookup could answer differently (DNS rebinding).
		var nc net.Conn
		nc, err = s.dial(ctx, "tcp", a.String())
		if err == nil {
			return nc, tunnel.OpenOK, ""
		}
	}
	s.log.Warn("backend dial failed", "service", svc.Name, "backend", svc.Backend, "error", err.Error())
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return nil, tunnel.OpenRefused, fmt.Sprintf("%s refused the connection", svc.Name)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		return nil, tunnel.OpenTimeout, fmt.Sprintf("%s did not answer within %s", svc.Name, cfg.Limits.DialTimeout.Duration)
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, tunnel.OpenTimeout, fmt.Sprintf("%s did not answer within %s", svc.Name, cfg.Limits.DialTimeout.Duration)
		}
		return nil, tunnel.OpenUnreachable, fmt.Sprintf("cannot reach %s", svc.Name)
	}
}

// resolveBackend turns a service's backend into the addresses that may be
// dialed: a literal address, or every address its name resolves to, less
// those in [network] deny. Backends are fixed by the config; clients only
// name services.
func (s *Server) resolveBackend(ctx context.Context, cfg *config.Config, svc *config.Service) ([]netip.AddrPort, tunnel.OpenStatus, string) {
	host, portStr, err := net.SplitHostPort(svc.Backend)
	if err != nil {
		return nil, tunnel.OpenUnreachable, "bad backend address for " + svc.Name
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, tunnel.OpenUnreachable, "bad backend port for " + svc.Name
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		ips, err = s.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			s.log.Warn("backend dial failed", "service", svc.Name, "backend", svc.Backend, "error", err.Error())
			return nil, tunnel.OpenUnreachable, fmt.Sprintf("cannot resolve the backend of %s", svc.Name)
		}
	}
	var ok []netip.AddrPort
	for _, ip := range ips {
		if cfg.Network.Denies(ip) {
			s.count.denied.Add(1)
			s.log.Warn("backend address denied", "service", svc.Name, "backend", svc.Backend, "address", ip.String())
			continue
		}
		ok = append(ok, netip.AddrPortFrom(ip.Unmap(), uint16(port)))
	}
	if len(ok) == 0 {
		return nil, tunnel.OpenForbidden, fmt.Sprintf("the backend of %s resolves only to denied addresses", svc.Name)
	}
	return ok, tunnel.OpenOK, ""
}

// echoConn is the built-in echo backend: what is written comes back to be
// read, in order, and CloseWrite makes the reader see end of file once it
// has everything, like a TCP echo server that echoes until EOF.
type echoConn struct {
	pr *io.PipeReader
	pw *io.PipeWriter
}

func newEchoConn() *echoConn {
	pr, pw := io.Pipe()
	return &echoConn{pr: pr, pw: pw}
}

func (e *echoConn) Read(p []byte) (int, error)  { return e.pr.Read(p) }
func (e *echoConn) Write(p []byte) (int, error) { return e.pw.Write(p) }
func (e *echoConn) CloseWrite() error           { return e.pw.Close() }
func (e *echoConn) Close() error {
	e.pw.Close()
	return e.pr.Close()
}
func (e *echoConn) LocalAddr() net.Addr                { return echoAddr{} }
func (e *echoConn) RemoteAddr() net.Addr               { return echoAddr{} }
func (e *echoConn) SetDeadline(t time.Time) error      { return nil }
func (e *echoConn) SetReadDeadline(t time.Time) error  { return nil }
func (e *echoConn) SetWriteDeadline(t time.Time) error { return nil }

type echoAddr struct{}

func (echoAddr) Network() string { return "builtin" }
func (echoAddr) String() string  { return builtinEcho }
