//go:build linux

package tests

// The deployment behind a reverse proxy, run for real: the tests start
// `ferry serve` with deploy/gateway.toml, and Debian's nginx with
// deploy/nginx.conf or Caddy with deploy/Caddyfile in front of it, each
// file read as it is in the repository with only its ports, certificate
// paths and the gateway's address replaced. The proxies terminate TLS
// for ferry.example.com with a certificate made here; the Go client
// reaches them on 127.0.0.1 with that name for SNI and Host, and
// Chromium maps the name to 127.0.0.1 and trusts the certificate's key.

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/compress"
	"github.com/ferrygw/ferry/gateway"
	"github.com/ferrygw/ferry/tunnel"
)

// publicName is the gateway's public name in the deploy/ files.
const publicName = "ferry.example.com"

// nginxPath is Debian's nginx, outside most users' PATH.
const nginxPath = "/usr/sbin/nginx"

var nginxPeer = &peer{
	name:      "nginx",
	available: sync.OnceValue(func() error { return executable(nginxPath) }),
	install:   "install it with `apt-get install nginx`",
}

var caddyPeer = &peer{
	name: "caddy",
	available: sync.OnceValue(func() error {
		_, err := exec.LookPath("caddy")
		return err
	}),
	install: "install it with `apt-get install caddy`",
}

// deployFile returns deploy/name with each pair of repl (old, new)
// replaced, failing the test when an old string is not in the file: the
// file and this test must agree on its placeholders.
func deployFile(t *testing.T, name string, repl ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "deploy", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(repl); i += 2 {
		if !strings.Contains(s, repl[i]) {
			t.Fatalf("deploy/%s has no %q, which the test replaces", name, repl[i])
		}
		s = strings.ReplaceAll(s, repl[i], repl[i+1])
	}
	return s
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// proxyCert is a fresh self-signed certificate for publicName (and
// localhost), as `ferry serve -self-signed` makes them.
type proxyCert struct {
	certFile, keyFile string
	pool              *x509.CertPool
	spki              string // base64 SHA-256 of the public key, for Chromium
}

func newProxyCert(t *testing.T) *proxyCert {
	t.Helper()
	tc, _, err := gateway.SelfSigned(publicName)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(tc.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(tc.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := &proxyCert{
		certFile: filepath.Join(dir, "fullchain.pem"),
		keyFile:  filepath.Join(dir, "privkey.pem"),
		pool:     x509.NewCertPool(),
	}
	writeFile(t, c.certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})))
	writeFile(t, c.keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	c.pool.AddCert(cert)
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	c.spki = base64.StdEncoding.EncodeToString(sum[:])
	return c
}

// proxyGateway is `ferry serve` running deploy/gateway.toml.
type proxyGateway struct {
	addr  string // host:port
	admin string // http://host:port of the admin listener
}

// startProxyGateway runs `ferry serve` with deploy/gateway.toml, its two
// listen ports replaced by 0. It is stopped with SIGTERM when the test
// ends, and must then exit with status 0.
func startProxyGateway(t *testing.T) *proxyGateway {
	t.Helper()
	cfg := deployFile(t, "gateway.toml", "127.0.0.1:8080", "127.0.0.1:0", "127.0.0.1:9090", "127.0.0.1:0")
	file := filepath.Join(t.TempDir(), "gateway.toml")
	writeFile(t, file, cfg)
	var p *proc
	p = startProc(t, "ferry serve", []string{ferryPath(t), "serve", "-config", file}, procOptions{
		stop: syscall.SIGTERM,
		stopped: func(err error) {
			if err != nil {
				t.Errorf("ferry serve ended with %v after SIGTERM, want status 0; its log:\n%s", err, p.stderr)
			}
		},
	})
	tunnelURL := p.stdout.wait(t, "ferry serve", servingLine, 1, 30*time.Second)[0][1]
	u, err := url.Parse(tunnelURL)
	if err != nil {
		t.Fatal(err)
	}
	admin := p.stdout.wait(t, "ferry serve", adminLine, 1, 30*time.Second)[0][1]
	return &proxyGateway{addr: u.Host, admin: admin}
}

// waitListening dials addr until it accepts, or fails the test when p
// exits or 30 s pass first.
func waitListening(t *testing.T, p *proc, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s within 30s (%v); its output:\n%s\n%s", p.name, addr, err, p.stdout, p.stderr)
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited (%v) before listening on %s; its output:\n%s\n%s", p.name, p.waitErr, addr, p.stdout, p.stderr)
		case <-tick.C:
		}
	}
}

// startNginx runs nginx with deploy/nginx.conf, listening on a free port
// of 127.0.0.1 and passing to g, inside a minimal main config of its own
// (the file is a snippet of the http context, as Debian's conf.d expects).
// It returns nginx's address.
func startNginx(t *testing.T, g *proxyGateway, cert *proxyCert) string {
	t.Helper()
	nginxPeer.require(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	dir := t.TempDir()
	snippet := deployFile(t, "nginx.conf",
		"listen 443 ssl", "listen "+addr+" ssl",
		"/etc/ssl/ferry/fullchain.pem", cert.certFile,
		"/etc/ssl/ferry/privkey.pem", cert.keyFile,
		"http://127.0.0.1:8080", "http://"+g.addr,
	)
	writeFile(t, filepath.Join(dir, "ferry.conf"), snippet)
	main := fmt.Sprintf(`# written by tests/proxy_test.go
worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr notice;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/ferry.conf;
}
`, dir)
	conf := filepath.Join(dir, "nginx.conf")
	writeFile(t, conf, main)
	p := startProc(t, "nginx", []string{nginxPath, "-c", conf, "-p", dir, "-e", "stderr", "-g", "daemon off;"}, procOptions{
		// The master stops its workers on SIGTERM; the group is signalled
		// so that no worker outlives a master that did not.
		stop:        syscall.SIGTERM,
		group:       true,
		parentDeath: syscall.SIGTERM,
	})
	waitListening(t, p, addr)
	return addr
}

var caddyServing = regexp.MustCompile(`"msg":"serving initial configuration"`)

// startCaddy runs caddy with deploy/Caddyfile on free ports (HTTPS, the
// HTTP redirect and the admin API), passing to g, with its HOME and data
// folders in a temporary folder. It returns the HTTPS address on
// 127.0.0.1. (Caddy listens on every interface: the Caddyfile names no
// address, as a deployment would not.)
func startCaddy(t *testing.T, g *proxyGateway, cert *proxyCert) string {
	t.Helper()
	caddyPeer.require(t)
	port := strconv.Itoa(freePort(t))
	dir := t.TempDir()
	file := deployFile(t, "Caddyfile",
		"admin localhost:2019", "admin localhost:"+strconv.Itoa(freePort(t)),
		"http_port 80", "http_port "+strconv.Itoa(freePort(t)),
		"https_port 443", "https_port "+port,
		"/etc/ssl/ferry/fullchain.pem", cert.certFile,
		"/etc/ssl/ferry/privkey.pem", cert.keyFile,
		"reverse_proxy 127.0.0.1:8080", "reverse_proxy "+g.addr,
	)
	conf := filepath.Join(dir, "Caddyfile")
	writeFile(t, conf, file)
	home := filepath.Join(dir, "home")
	p := startProc(t, "caddy", []string{"env",
		"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, "config"), "XDG_DATA_HOME=" + filepath.Join(home, "data"),
		"caddy", "run", "--config", conf, "--adapter", "caddyfile",
	}, procOptions{stop: syscall.SIGTERM})
	p.stderr.wait(t, "caddy", caddyServing, 1, 30*time.Second)
	return net.JoinHostPort("127.0.0.1", port)
}

// proxyDialOptions are the native client's WebSocket settings, with TCP
// going to the proxy at addr whatever the URL's host, TLS trusting cert,
// and no HTTP proxy from the environment.
func proxyDialOptions(addr string, cert *proxyCert, header http.Header) *tunnel.DialOptions {
	return &tunnel.DialOptions{
		HTTPHeader:   header,
		Subprotocols: []string{tunnel.Subprotocol},
		TLSConfig:    &tls.Config{RootCAs: cert.pool},
		Proxy:        func(*http.Request) (*url.URL, error) { return nil, nil },
		NetDial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		ReadLimit:   64 << 20,
		Compression: &compress.Options{},
	}
}

// proxyHTTPClient sends requests for any URL to the proxy at addr, over
// TLS for publicName.
func proxyHTTPClient(addr string, cert *proxyCert) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{ // no Proxy: never one from the environment
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			},
			TLSClientConfig: &tls.Config{RootCAs: cert.pool, ServerName: publicName},
		},
	}
}

// proxyRoundTripSize is what TestProxyNginx and TestProxyCaddy send
// through the echo service and check by SHA-256.
const proxyRoundTripSize = 32 << 20

// testThroughProxy runs the checks that both proxies must pass: the page
// and a refused Host, the Origin check, a 32 MiB round trip through the
// echo service with the Go client, and the admin endpoints.
// otherHostStatus is what a request for another name gets: nginx passes
// it to the gateway, which refuses it (403); Caddy's site matches only
// publicName and answers other names itself with an empty 200.
func testThroughProxy(t *testing.T, g *proxyGateway, proxyAddr string, cert *proxyCert, otherHostStatus int) {
	_, port, _ := net.SplitHostPort(proxyAddr)
	origin := "https://" + publicName + ":" + port
	tunnelURL := "wss://" + publicName + ":" + port + "/tunnel"
	hc := proxyHTTPClient(proxyAddr, cert)

	t.Run("page", func(t *testing.T) {
		get := func(host string) (int, string) {
			t.Helper()
			req, err := http.NewRequest("GET", origin+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = host
			// A client's own forwarded headers must not pass the proxy.
			req.Header.Set("X-Forwarded-Host", "attacker.example")
			req.Header.Set("X-Forwarded-Proto", "http")
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if status, body := get(publicName + ":" + port); status != 200 || !strings.Contains(body, "/ferry/ferry.js") {
			t.Errorf("GET / for %s: %d, want 200 and the demo page; body:\n%.300s", publicName, status, body)
		}
		status, body := get("rebind.example:" + port)
		if status != otherHostStatus || (status == 200 && body != "") {
			t.Errorf("GET / for rebind.example: %d %.200q, want %d and nothing of the gateway's", status, body, otherHostStatus)
		} else {
			t.Logf("GET / for rebind.example: %d %s", status, strings.TrimSpace(body))
		}
	})

	// The Origin check, as a browser makes it. The tunnel URL without a
	// port sends Host: ferry.example.com, as a browser does for a page on
	// 443 (the proxy listens on another port, but the client's TCP goes
	// to it whatever the URL says): then only X-Forwarded-Proto tells the
	// gateway that the page's https origin is its own (https implies port
	// 443, plain http 80).
	t.Run("origin", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, tc := range []struct {
			url, origin string
			want        int
		}{
			{tunnelURL, origin, 101}, // the page's own origin
			{"wss://" + publicName + "/tunnel", "https://" + publicName, 101},
			{"wss://" + publicName + "/tunnel", "http://" + publicName, 403}, // another origin: another scheme
			{tunnelURL, "https://attacker.example", 403},                     // in no allowed_origins
		} {
			c, resp, err := tunnel.Dial(ctx, tc.url, proxyDialOptions(proxyAddr, cert, http.Header{"Origin": {tc.origin}}))
			got := 0
			if resp != nil {
				got = resp.StatusCode
			}
			if err == nil {
				got = 101
				c.CloseNow()
			}
			if got != tc.want {
				t.Errorf("%s with Origin %s: %d (%v), want %d", tc.url, tc.origin, got, err, tc.want)
			}
		}
	})

	t.Run("echo 32MiB", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		dopts := proxyDialOptions(proxyAddr, cert, nil)
		sess, err := client.Connect(ctx, tunnelURL, &client.Options{
			Dialer: func(ctx context.Context, u string) (net.Conn, error) {
				c, resp, err := tunnel.Dial(ctx, u, dopts)
				if err != nil {
					if resp != nil {
						return nil, &client.RefusedError{Status: resp.StatusCode, Err: err}
					}
					return nil, err
				}
				return c.StreamConn(), nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		c, err := sess.Dial(ctx, "echo")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()

		start := time.Now()
		sent := make(chan []byte, 1)
		go func() {
			h := sha256.New()
			rng := mrand.NewChaCha8([32]byte{1})
			buf := make([]byte, 64<<10)
			for n := 0; n < proxyRoundTripSize; n += len(buf) {
				rng.Read(buf)
				h.Write(buf)
				if _, err := c.Write(buf); err != nil {
					sent <- nil
					return
				}
			}
			if c.CloseWrite() != nil {
				sent <- nil
				return
			}
			sent <- h.Sum(nil)
		}()
		h := sha256.New()
		n, err := io.Copy(h, c)
		if err != nil {
			t.Fatalf("reading the echo after %d bytes: %v", n, err)
		}
		want := <-sent
		if want == nil {
			t.Fatal("writing to the echo service failed")
		}
		if got := h.Sum(nil); n != proxyRoundTripSize || string(got) != string(want) {
			t.Fatalf("the echo gave %d bytes with SHA-256 %x; sent %d with %x", n, got, proxyRoundTripSize, want)
		}
		d := time.Since(start)
		t.Logf("%d MiB echoed through the proxy in %s: %.1f MB/s each way", proxyRoundTripSize>>20, d.Round(time.Millisecond), proxyRoundTripSize/1e6/d.Seconds())
	})

	t.Run("admin", func(t *testing.T) {
		ac := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
		for path, want := range map[string]*regexp.Regexp{
			"/readyz":  regexp.MustCompile(`^ready\n$`),
			"/metrics": regexp.MustCompile(`(?m)^ferry_streams_total [1-9]`),
		} {
			resp, err := ac.Get(g.admin + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !want.Match(b) {
				t.Errorf("admin %s: %d, want 200 and %q; body:\n%s", path, resp.StatusCode, want, b)
			}
		}
	})
}

// TestProxyNginx runs deploy/gateway.toml behind deploy/nginx.conf.
func TestProxyNginx(t *testing.T) { testProxy(t, nginxPeer, startNginx, 403) }

// TestProxyCaddy runs deploy/gateway.toml behind deploy/Caddyfile.
func TestProxyCaddy(t *testing.T) { testProxy(t, caddyPeer, startCaddy, 200) }

// testProxy starts the gateway and, in front of it, the proxy that start
// runs, and checks them with testThroughProxy.
func testProxy(t *testing.T, proxy *peer, start func(*testing.T, *proxyGateway, *proxyCert) string, otherHostStatus int) {
	t.Parallel()
	proxy.require(t)
	cert := newProxyCert(t)
	g := startProxyGateway(t)
	testThroughProxy(t, g, start(t, g, cert), cert, otherHostStatus)
}

// TestProxyNginxBrowser loads https://ferry.example.com:PORT/ in headless
// Chromium through deploy/nginx.conf: the demo page has its hello echoed,
// and a page of that origin connects ferry.js to its own /tunnel (no
// allowed_origins: same-origin through the proxy's forwarded headers)
// and echoes random bytes on 4 parallel streams, checked by SHA-256.
func TestProxyNginxBrowser(t *testing.T) {
	t.Parallel()
	nginxPeer.require(t)
	cert := newProxyCert(t)
	b := startCDPBrowser(t,
		"--host-resolver-rules=MAP "+publicName+" 127.0.0.1",
		"--ignore-certificate-errors-spki-list="+cert.spki,
	)
	g := startProxyGateway(t)
	addr := startNginx(t, g, cert)
	_, port, _ := net.SplitHostPort(addr)
	origin := "https://" + publicName + ":" + port

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := b.openPage(ctx, origin+"/")
	if err != nil {
		t.Fatal(err)
	}
	eval := func(expr string, out any) {
		t.Helper()
		if err := p.eval(ctx, expr, out); err != nil {
			t.Fatalf("%s: %v\npage console:\n%s", expr, err, p.console)
		}
	}
	eval(wasmSuiteJS, nil)
	var demo struct{ Log, State string }
	eval(`suite.demoEcho()`, &demo)
	if !strings.HasPrefix(demo.State, "connected") || !strings.Contains(demo.Log, "hello") {
		t.Errorf("the demo page through nginx shows %q and the log:\n%s\nwant its hello echoed", demo.State, demo.Log)
	}

	// A page of the same origin without a client of its own.
	if err := p.navigate(ctx, origin+"/healthz"); err != nil {
		t.Fatal(err)
	}
	eval(wasmSuiteJS, nil)
	eval(`suite.load()`, nil)
	var c struct {
		OK    bool
		URL   string
		Error *wasmErr
	}
	eval(`suite.connect("main")`, &c)
	if !c.OK {
		t.Fatalf("connect through nginx: %+v", c.Error)
	}
	if want := "wss://" + publicName + ":" + port + "/tunnel"; c.URL != want {
		t.Errorf("the page connected to %s, want %s", c.URL, want)
	}
	const streams, size = 4, 1 << 20
	var got struct {
		Results []struct {
			Sent, Received string
			Bytes          int
		}
		MS float64
	}
	eval(fmt.Sprintf(`suite.bulk("main", "echo", %d, %d)`, streams, size), &got)
	if len(got.Results) != streams {
		t.Fatalf("%d results, want %d", len(got.Results), streams)
	}
	for i, r := range got.Results {
		if r.Bytes != size || r.Sent != r.Received {
			t.Errorf("stream %d: %d bytes came back with SHA-256 %s; sent %d with %s", i, r.Bytes, r.Received, size, r.Sent)
		}
	}
	t.Logf("the page echoed %d streams × %d MiB through nginx in %.0f ms", streams, size>>20, got.MS)
	eval(`suite.close("main")`, nil)
}
