package gateway_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/gateway"
	"github.com/ferrygw/ferry/tunnel"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testToken and its hash; the config stores only the hash.
const testToken = "dGVzdC10b2tlbi1mb3ItZmVycnktZ2F0ZXdheS10ZXN0cw"

func tokenHash(tok string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(tok))) }

// tcpBackend is a real TCP server on 127.0.0.1 that runs handle for each
// connection, until the test ends.
func tcpBackend(t testing.TB, handle func(*net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	return ln.Addr().String()
}

// echoBackend echoes until EOF, then closes its write half.
func echoBackend(t testing.TB) string {
	return tcpBackend(t, func(c *net.TCPConn) {
		io.Copy(c, c)
		c.CloseWrite()
	})
}

// hashBackend reads until EOF and only then answers with the SHA-256 of
// what it read: it needs the half-close to cross the tunnel.
func hashBackend(t testing.TB) string {
	return tcpBackend(t, func(c *net.TCPConn) {
		h := sha256.New()
		io.Copy(h, c)
		c.Write(h.Sum(nil))
	})
}

type gw struct {
	srv  *gateway.Server
	url  string
	ln   net.Listener
	done chan struct{} // closed when Serve has returned
}

// startGateway runs a gateway with the config text on 127.0.0.1:0.
func startGateway(t testing.TB, toml string) *gw {
	t.Helper()
	return startGatewayOpts(t, toml, nil)
}

func connect(t testing.TB, url string, opts *client.Options) *client.Session {
	t.Helper()
	s, err := client.Connect(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// baseConfig is a config with a public echo service and room for many
// sessions from 127.0.0.1, plus extra (which may have its own [limits]).
func baseConfig(extra string) string {
	const limits = "[limits]\nmax_sessions_per_ip = 1000\n"
	if strings.Contains(extra, "[limits]\n") {
		extra = strings.Replace(extra, "[limits]\n", limits, 1)
	} else {
		extra = limits + extra
	}
	return extra + `
[services.echo]
backend = "builtin:echo"
public = true
`
}

// TestIntegrity sends a different random payload through each of many
// parallel streams of one session to a TCP echo backend and compares
// SHA-256 both ways, with compression on and off.
func TestIntegrity(t *testing.T) {
	backend := echoBackend(t)
	streams, size := 32, 8<<20
	if raceEnabled || testing.Short() {
		size = 1 << 20
	}
	for _, compression := range []bool{true, false} {
		t.Run(fmt.Sprintf("compression=%v", compression), func(t *testing.T) {
			g := startGateway(t, baseConfig(fmt.Sprintf(`
[compression]
enabled = %v
[services.tcpecho]
backend = %q
public = true
`, compression, backend)))
			s := connect(t, g.url, nil)
			var wg sync.WaitGroup
			for i := 0; i < streams; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := s.Dial(context.Background(), "tcpecho")
					if err != nil {
						t.Error(err)
						return
					}
					defer c.Close()
					data := make([]byte, size)
					if i%2 == 0 {
						rand.Read(data)
					} else {
						// Protocol-like text, so compression has work.
						copy(data, strings.Repeat(fmt.Sprintf("SET key:%d value-%d\r\n", i, i), size/16+1))
					}
					want := sha256.Sum256(data)
					go func() {
						c.Write(data)
						c.CloseWrite()
					}()
					h := sha256.New()
					n, err := io.Copy(h, c)
					if err != nil || n != int64(size) || [32]byte(h.Sum(nil)) != want {
						t.Errorf("stream %d: %d bytes back, %v, hash match %v", i, n, err, [32]byte(h.Sum(nil)) == want)
					}
				}()
			}
			wg.Wait()
		})
	}
}

// TestHalfClose: the client shuts its write half; the backend sees EOF and
// only then replies, and the reply arrives.
func TestHalfClose(t *testing.T) {
	t.Parallel()
	g := startGateway(t, baseConfig(fmt.Sprintf("[services.hash]\nbackend = %q\npublic = true\n", hashBackend(t))))
	s := connect(t, g.url, nil)
	c, err := s.Dial(context.Background(), "hash")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := []byte("bytes before the half-close")
	c.Write(msg)
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	want := sha256.Sum256(msg)
	if err != nil || string(got) != string(want[:]) {
		t.Fatalf("reply %x, %v; want %x", got, err, want)
	}
}

// TestCredentials checks who may open what.
// aliceConfig has private services redis and postgres on backend and the
// token testToken, named alice, for redis only.
func aliceConfig(backend string) string {
	return baseConfig(fmt.Sprintf(`
[services.redis]
backend = %q
[services.postgres]
backend = %q
[[tokens]]
name = "alice"
sha256 = %q
services = ["redis"]
`, backend, backend, tokenHash(testToken)))
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	backend := echoBackend(t)
	g := startGateway(t, aliceConfig(backend))
	ctx := context.Background()

	alice := connect(t, g.url, &client.Options{Token: testToken})
	c, err := alice.Dial(ctx, "redis")
	if err != nil {
		t.Fatalf("alice -> redis: %v", err)
	}
	c.Close()
	var oe *tunnel.OpenError
	_, err = alice.Dial(ctx, "postgres")
	if !errors.As(err, &oe) || oe.Status != tunnel.OpenForbidden || !strings.Contains(oe.Message, "alice may not open postgres") {
		t.Fatalf("alice -> postgres: %v", err)
	}
	// The session lives on after a refused stream.
	if c, err := alice.Dial(ctx, "echo"); err != nil {
		t.Fatalf("alice -> echo after a refusal: %v", err)
	} else {
		c.Close()
	}
	_, err = alice.Dial(ctx, "nosuch")
	if !errors.As(err, &oe) || oe.Status != tunnel.OpenUnknownService {
		t.Fatalf("alice -> nosuch: %v", err)
	}

	// A wrong token is refused at the handshake.
	_, err = client.Connect(ctx, g.url, &client.Options{Token: "wrong-token"})
	var re *client.RefusedError
	if !errors.As(err, &re) || re.Status != 401 || !strings.Contains(err.Error(), "not valid") {
		t.Fatalf("wrong token: %v", err)
	}

	// No credential: public services only.
	anon := connect(t, g.url, nil)
	if c, err := anon.Dial(ctx, "echo"); err != nil {
		t.Fatalf("anonymous -> echo: %v", err)
	} else {
		c.Close()
	}
	_, err = anon.Dial(ctx, "redis")
	if !errors.As(err, &oe) || oe.Status != tunnel.OpenForbidden || !strings.Contains(oe.Message, "needs a token") {
		t.Fatalf("anonymous -> redis: %v", err)
	}
}

// TestNoPublicServiceNeedsToken: without public services a handshake
// without a credential is refused.
func TestNoPublicServiceNeedsToken(t *testing.T) {
	t.Parallel()
	g := startGateway(t, fmt.Sprintf(`
[services.redis]
backend = "127.0.0.1:1"
[[tokens]]
sha256 = %q
services = ["redis"]
`, tokenHash(testToken)))
	_, err := client.Connect(context.Background(), g.url, nil)
	var re *client.RefusedError
	if !errors.As(err, &re) || re.Status != 401 || !strings.Contains(err.Error(), "token is required") {
		t.Fatalf("Connect without a token: %v", err)
	}
}

// TestBackendFaults covers a refused backend, a backend that dies in the
// middle of a stream (a reset, passed on), and the stream limit.
func TestBackendFaults(t *testing.T) {
	t.Parallel()
	// A port with nothing listening: bind, note it, close.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := ln.Addr().String()
	ln.Close()
	// A backend that sends a little and dies.
	dying, _ := net.Listen("tcp", "127.0.0.1:0")
	defer dying.Close()
	go func() {
		for {
			c, err := dying.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("partial"))
			// Die once the client has spoken: a reset before the
			// gateway's connect has completed would fail the dial.
			c.Read(make([]byte, 1))
			c.(*net.TCPConn).SetLinger(0)
			c.Close() // reset
		}
	}()
	g := startGateway(t, fmt.Sprintf(`
[limits]
max_streams_per_session = 2
[services.echo]
backend = "builtin:echo"
public = true
[services.down]
backend = %q
public = true
[services.dying]
backend = %q
public = true
`, closedPort, dying.Addr().String()))
	s := connect(t, g.url, &client.Options{MaxTunnels: 1}) // the gateway's limit, not extra tunnels
	ctx := context.Background()
	var oe *tunnel.OpenError
	_, err := s.Dial(ctx, "down")
	if !errors.As(err, &oe) || oe.Status != tunnel.OpenRefused || !strings.Contains(oe.Message, "refused") {
		t.Fatalf("down: %v", err)
	}
	c, err := s.Dial(ctx, "dying")
	if err != nil {
		t.Fatalf("dying: %v", err)
	}
	c.Write([]byte("x"))
	got, err := io.ReadAll(c)
	c.Close()
	// A backend reset reaches the client as an error after what arrived,
	// never as a clean end of stream.
	if err == nil || !strings.HasPrefix("partial", string(got)) {
		t.Fatalf("dying backend: read %q, %v (want an error, not end of stream)", got, err)
	}
	// Stream limit: two open, the third refused. The gateway counts the
	// dying stream until it has reset it.
	for deadline := time.Now().Add(5 * time.Second); g.srv.SessionStreams() != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the dying stream is still held")
		}
	}
	a, err := s.Dial(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := s.Dial(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, err = s.Dial(ctx, "echo")
	if !errors.As(err, &oe) || oe.Status != tunnel.OpenLimit {
		t.Fatalf("third stream: %v", err)
	}
}
