package tunnel

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

// connectProxy is a real HTTP CONNECT proxy for tests. It resolves the
// hostname "ferry-test.internal" to 127.0.0.1, so a client that would
// never proxy a loopback address still goes through it, and requires Basic
// auth when user is set.
type connectProxy struct {
	ln      net.Listener
	user    string
	pass    string
	tunnels atomic.Int32
}

func startProxy(t testing.TB, user, pass string) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{ln: ln, user: user, pass: pass}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *connectProxy) URL() string {
	if p.user != "" {
		return "http://" + url.UserPassword(p.user, p.pass).String() + "@" + p.ln.Addr().String()
	}
	return "http://" + p.ln.Addr().String()
}

func (p *connectProxy) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
		return
	}
	if p.user != "" {
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte(p.user+":"+p.pass))
		if req.Header.Get("Proxy-Authorization") != want {
			io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
			return
		}
	}
	host, port, err := net.SplitHostPort(req.Host)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
		return
	}
	if host == "ferry-test.internal" {
		host = "127.0.0.1"
	}
	if host != "127.0.0.1" {
		// Never send a packet off this machine.
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := net.Dial("tcp", net.JoinHostPort(host, port))
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer up.Close()
	p.tunnels.Add(1)
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{})
	go func() { io.Copy(up, br); up.(*net.TCPConn).CloseWrite(); close(done) }()
	io.Copy(c, up)
	<-done
}

func roundTrip(t testing.TB, c *Conn, msg string) {
	t.Helper()
	ctx := context.Background()
	if err := c.Write(ctx, MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	typ, got, err := c.Read(ctx)
	if err != nil || typ != MessageText || string(got) != msg {
		t.Fatalf("echo = %v %q %v", typ, got, err)
	}
}

func TestDialTLS(t *testing.T) {
	t.Parallel()
	tlsSrv := echoServerTLS(t)
	pool := x509.NewCertPool()
	pool.AddCert(tlsSrv.Certificate())
	u := "wss" + strings.TrimPrefix(tlsSrv.URL, "https")
	c, _, err := Dial(context.Background(), u, &DialOptions{TLSConfig: tlsConfig(pool)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	roundTrip(t, c, "over TLS")
	// Without the test CA the certificate is refused.
	if _, _, err := Dial(context.Background(), u, &DialOptions{Proxy: noProxy}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Dial without the CA: %v", err)
	}
}

func noProxy(*http.Request) (*url.URL, error) { return nil, nil }

func TestDialThroughProxy(t *testing.T) {
	t.Parallel()
	srv := echoServer(t, nil)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	target := "ws://ferry-test.internal:" + port + "/"
	proxy := startProxy(t, "alice", "s3cret")
	pu, _ := url.Parse(proxy.URL())
	c, _, err := Dial(context.Background(), target, &DialOptions{Proxy: http.ProxyURL(pu)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	roundTrip(t, c, "through the proxy")
	if n := proxy.tunnels.Load(); n != 1 {
		t.Fatalf("proxy opened %d tunnels, want 1", n)
	}
	// Wrong credentials: the proxy's refusal is reported.
	bad, _ := url.Parse("http://alice:wrong@" + proxy.ln.Addr().String())
	_, _, err = Dial(context.Background(), target, &DialOptions{Proxy: http.ProxyURL(bad)})
	if err == nil || !strings.Contains(err.Error(), "407") {
		t.Fatalf("Dial with a wrong password: %v", err)
	}
}

// TestDialProxyFromEnvironment runs a child test process with HTTP_PROXY
// set (net/http reads the environment once per process) and checks that
// the dial went through the proxy.
func TestDialProxyFromEnvironment(t *testing.T) {
	if os.Getenv("FERRY_TEST_PROXY_CHILD") != "" {
		c, _, err := Dial(context.Background(), os.Getenv("FERRY_TEST_TARGET"), nil)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c, "env proxy")
		c.Close(StatusNormalClosure, "")
		return
	}
	t.Parallel()
	srv := echoServer(t, nil)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	proxy := startProxy(t, "", "")
	cmd := exec.Command(os.Args[0], "-test.run=^TestDialProxyFromEnvironment$", "-test.v")
	cmd.Env = append(os.Environ(),
		"FERRY_TEST_PROXY_CHILD=1",
		"FERRY_TEST_TARGET=ws://ferry-test.internal:"+port+"/",
		"HTTP_PROXY="+proxy.URL(), "HTTPS_PROXY=", "NO_PROXY=", "http_proxy=", "https_proxy=", "no_proxy=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if n := proxy.tunnels.Load(); n != 1 {
		t.Fatalf("proxy opened %d tunnels, want 1\n%s", n, out)
	}
	// NO_PROXY for that host: the child must not use the proxy (and fails
	// to resolve the test-only name directly).
	cmd = exec.Command(os.Args[0], "-test.run=^TestDialProxyFromEnvironment$")
	cmd.Env = append(os.Environ(),
		"FERRY_TEST_PROXY_CHILD=1",
		"FERRY_TEST_TARGET=ws://ferry-test.internal:"+port+"/",
		"HTTP_PROXY="+proxy.URL(), "NO_PROXY=ferry-test.internal", "http_proxy=", "no_proxy=")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("child with NO_PROXY succeeded:\n%s", out)
	}
	if n := proxy.tunnels.Load(); n != 1 {
		t.Fatalf("NO_PROXY ignored: proxy opened %d tunnels", n)
	}
}

func TestDialHeadersAndSubprotocol(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	srv := echoServer(t, &AcceptOptions{
		Subprotocols: []string{"ferry.v1"},
		CheckOrigin: func(r *http.Request) error {
			got <- r.Header.Get("Authorization")
			return nil
		},
	})
	u := "ws" + strings.TrimPrefix(srv.URL, "http")
	c, _, err := Dial(context.Background(), u, &DialOptions{
		Subprotocols: []string{"other", "ferry.v1"},
		HTTPHeader:   http.Header{"Authorization": {"Bearer abc"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if c.Subprotocol() != "ferry.v1" {
		t.Fatalf("subprotocol %q", c.Subprotocol())
	}
	if a := <-got; a != "Bearer abc" {
		t.Fatalf("server saw Authorization %q", a)
	}
	for _, h := range []http.Header{{"Sec-WebSocket-Key": {"x"}}, {"X-Bad": {"a\r\nInjected: 1"}}} {
		if _, _, err := Dial(context.Background(), u, &DialOptions{HTTPHeader: h}); err == nil {
			t.Errorf("Dial with header %v succeeded", h)
		}
	}
}

func ExampleDial() {
	ctx := context.Background()
	c, _, err := Dial(ctx, "ws://127.0.0.1:9001/", &DialOptions{Subprotocols: []string{"ferry.v1"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close(StatusNormalClosure, "")
	_ = c.Write(ctx, MessageText, []byte("hello"))
}
