package gateway_test

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/gateway"
)

// serveOn runs a gateway with the config text on 127.0.0.1:0, through
// listener (to add TLS or watch connections) when it is not nil, and
// returns it and its address.
func serveOn(t *testing.T, toml string, listener func(*gateway.Server, net.Listener) net.Listener) (*gateway.Server, string) {
	t.Helper()
	g := startGatewayWith(t, toml, nil, listener)
	return g.srv, g.ln.Addr().String()
}

// withTLS serves TLS with the gateway's own TLSConfig.
func withTLS(t *testing.T) func(*gateway.Server, net.Listener) net.Listener {
	return func(srv *gateway.Server, ln net.Listener) net.Listener {
		cfg, err := srv.TLSConfig()
		if err != nil {
			t.Fatal(err)
		}
		return tls.NewListener(ln, cfg)
	}
}

// tlsKeys writes a self-signed pair and returns the [server] keys that
// serve it.
func tlsKeys(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cert, _, err := gateway.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePair(t, cert, certFile, keyFile, time.Now())
	return fmt.Sprintf("tls_cert = %q\ntls_key = %q\n", certFile, keyFile)
}

// hostReply is what the gateway answered a request with a chosen Host.
type hostReply struct {
	status int
	body   string // of a refusal
	proto  string // Sec-WebSocket-Protocol of a 101
}

// hostRequest sends GET path to the gateway at base ("http://addr" or
// "https://addr") with Host host and the extra headers; as a WebSocket
// handshake offering ferry.v1 when upgrade is set.
func hostRequest(t *testing.T, base, host, path string, header map[string]string, upgrade bool) hostReply {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if upgrade {
		key := make([]byte, 16)
		rand.Read(key)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString(key))
		req.Header.Set("Sec-WebSocket-Protocol", "ferry.v1")
	}
	tr := &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
		// The gateway's self-signed certificate names no test host.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s with Host %q: %v", path, host, err)
	}
	defer resp.Body.Close()
	r := hostReply{status: resp.StatusCode, proto: resp.Header.Get("Sec-WebSocket-Protocol")}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300)) // a reason, or the start of a page
		r.body = strings.TrimSpace(string(b))
	}
	return r
}

// TestHostCheck: against DNS rebinding, a plaintext listener answers only
// a Host that is an IP literal, localhost, a name under .localhost or a
// name in allowed_hosts, for the page, the assets and the tunnel alike;
// TLS listeners answer every name unless allowed_hosts is set; a trusted
// proxy's X-Forwarded-Host and X-Forwarded-Proto stand in for Host and
// scheme in the Host check and the same-origin check, an untrusted peer's
// count for nothing; /healthz answers any Host.
func TestHostCheck(t *testing.T) {
	t.Parallel()
	const limits = "[limits]\nhandshakes_per_second_per_ip = 1000\n"
	gateways := map[string]string{
		"plain":      baseConfig("[server]\ntrusted_proxies = [\"192.0.2.0/24\"]\n" + limits),
		"listed":     baseConfig("[server]\nallowed_hosts = [\"allowed.example\", \"*.dev.example\"]\ntrusted_proxies = [\"127.0.0.1/32\"]\n" + limits),
		"proxied":    baseConfig("[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n" + limits),
		"tls":        baseConfig("[server]\n" + tlsKeys(t) + limits),
		"tls-listed": baseConfig("[server]\nallowed_hosts = [\"allowed.example\"]\n" + tlsKeys(t) + limits),
	}
	bases := map[string]string{}
	servers := map[string]*gateway.Server{}
	for name, toml := range gateways {
		var l func(*gateway.Server, net.Listener) net.Listener
		scheme := "http://"
		if strings.HasPrefix(name, "tls") {
			l, scheme = withTLS(t), "https://"
		}
		srv, addr := serveOn(t, toml, l)
		bases[name], servers[name] = scheme+addr, srv
	}

	const (
		ok        = ""
		plaintext = `is not allowed on a plaintext listener; add it to [server] allowed_hosts`
		unlisted  = `is not in [server] allowed_hosts`
		origin    = `may not open tunnels here`
	)
	for _, tc := range []struct {
		gw, name, host string
		header         map[string]string
		origin         string // of the tunnel handshake; "" is the page's own: scheme://host
		page, tunnel   string // ok, or what the 403 says
	}{
		{gw: "plain", name: "IPv4 literal", host: "127.0.0.1:8080"},
		{gw: "plain", name: "IPv6 literal", host: "[::1]:8080"},
		{gw: "plain", name: "IPv6 literal, default port", host: "[::1]"},
		{gw: "plain", name: "localhost", host: "localhost:8080"},
		{gw: "plain", name: "localhost, upper case, trailing dot", host: "LOCALHOST.:8080"},
		{gw: "plain", name: "name under .localhost", host: "foo.localhost:8080"},
		{gw: "plain", name: "rebinding name", host: "rebind.example:8080", page: plaintext, tunnel: plaintext},
		{gw: "plain", name: "rebinding name, trailing dot, default port", host: "rebind.example.", page: plaintext, tunnel: plaintext},
		{gw: "plain", name: "a name that embeds an IP", host: "127.0.0.1.nip.io:8080", page: plaintext, tunnel: plaintext},
		{gw: "plain", name: "localhost as a subdomain", host: "localhost.rebind.example:8080", page: plaintext, tunnel: plaintext},
		{gw: "plain", name: "untrusted X-Forwarded-Host does not help", host: "rebind.example:8080",
			header: map[string]string{"X-Forwarded-Host": "127.0.0.1:8080"}, page: plaintext, tunnel: plaintext},
		{gw: "plain", name: "untrusted X-Forwarded-Proto does not help", host: "rebind.example:8080",
			header: map[string]string{"X-Forwarded-Proto": "https"}, page: plaintext, tunnel: plaintext},
		{gw: "plain", name: "untrusted X-Forwarded-Host is ignored for same-origin", host: "127.0.0.1:8080",
			header: map[string]string{"X-Forwarded-Host": "rebind.example:8080"}, origin: "http://rebind.example:8080", tunnel: origin},

		{gw: "listed", name: "listed name", host: "allowed.example:8080"},
		{gw: "listed", name: "listed name, other case, trailing dot", host: "ALLOWED.example.:8080"},
		{gw: "listed", name: "pattern", host: "a.dev.example"},
		{gw: "listed", name: "pattern's own domain", host: "dev.example:8080", page: unlisted, tunnel: unlisted},
		{gw: "listed", name: "unlisted name", host: "rebind.example:8080", page: unlisted, tunnel: unlisted},
		{gw: "listed", name: "IP literal still passes", host: "127.0.0.1:8080"},
		{gw: "listed", name: "localhost still passes", host: "localhost:8080"},
		{gw: "listed", name: "trusted X-Forwarded-Host counts", host: "127.0.0.1:8080",
			header: map[string]string{"X-Forwarded-Host": "rebind.example:8080"}, origin: "http://rebind.example:8080", page: unlisted, tunnel: unlisted},
		{gw: "listed", name: "trusted X-Forwarded-Host, listed", host: "rebind.example:8080",
			header: map[string]string{"X-Forwarded-Host": "allowed.example"}, origin: "http://allowed.example"},

		{gw: "proxied", name: "trusted X-Forwarded-Host over plaintext", host: "127.0.0.1:8080",
			header: map[string]string{"X-Forwarded-Host": "rebind.example:8080"}, origin: "http://rebind.example:8080", page: plaintext, tunnel: plaintext},
		{gw: "proxied", name: "proxy that terminated TLS: same-origin by X-Forwarded-Host", host: "127.0.0.1:8080",
			header: map[string]string{"X-Forwarded-Host": "app.example.com", "X-Forwarded-Proto": "https"}, origin: "https://app.example.com"},
		{gw: "proxied", name: "an http page is not same-origin with an https proxy", host: "127.0.0.1:8080",
			header: map[string]string{"X-Forwarded-Host": "app.example.com:8443", "X-Forwarded-Proto": "https"}, origin: "http://app.example.com:8443", tunnel: origin},
		{gw: "proxied", name: "the last X-Forwarded-Proto counts", host: "127.0.0.1:8080",
			header: map[string]string{"X-Forwarded-Host": "app.example.com", "X-Forwarded-Proto": "https, http"}, origin: "https://app.example.com", page: plaintext, tunnel: plaintext},
		{gw: "proxied", name: "X-Forwarded-Proto https alone", host: "rebind.example:8443",
			header: map[string]string{"X-Forwarded-Proto": "https"}, origin: "https://rebind.example:8443"},

		{gw: "tls", name: "TLS: any name", host: "rebind.example:8443"},
		{gw: "tls", name: "TLS: IP literal", host: "127.0.0.1:8443"},
		{gw: "tls", name: "TLS: untrusted X-Forwarded-Proto http is ignored", host: "rebind.example:8443",
			header: map[string]string{"X-Forwarded-Proto": "http"}},
		{gw: "tls-listed", name: "TLS with allowed_hosts: unlisted name", host: "rebind.example:8443", page: unlisted, tunnel: unlisted},
		{gw: "tls-listed", name: "TLS with allowed_hosts: listed name", host: "allowed.example:8443"},
		{gw: "tls-listed", name: "TLS with allowed_hosts: IP literal", host: "127.0.0.1:8443"},
		{gw: "tls-listed", name: "TLS with allowed_hosts: localhost", host: "localhost:8443"},
	} {
		base := bases[tc.gw]
		scheme, _, _ := strings.Cut(base, "://")
		check := func(what string, got hostReply, want string, okStatus int) {
			t.Helper()
			if want == ok {
				if got.status != okStatus {
					t.Errorf("%s: %s: %d %q, want %d", tc.name, what, got.status, got.body, okStatus)
				}
				if okStatus == http.StatusSwitchingProtocols && got.proto != "ferry.v1" {
					t.Errorf("%s: %s: subprotocol %q", tc.name, what, got.proto)
				}
				return
			}
			if got.status != http.StatusForbidden || !strings.Contains(got.body, want) {
				t.Errorf("%s: %s: %d %q, want 403 saying %q", tc.name, what, got.status, got.body, want)
			}
			// The reason names the Host the check judged.
			named := tc.host
			if fwd := tc.header["X-Forwarded-Host"]; fwd != "" && (tc.gw == "listed" || tc.gw == "proxied") {
				named = fwd
			}
			if want != origin && !strings.Contains(got.body, fmt.Sprintf("host %q", named)) {
				t.Errorf("%s: %s: %q does not name host %q", tc.name, what, got.body, named)
			}
		}
		check("page /", hostRequest(t, base, tc.host, "/", tc.header, false), tc.page, http.StatusOK)
		check("asset", hostRequest(t, base, tc.host, "/ferry/ferry.js", tc.header, false), tc.page, http.StatusOK)
		o := tc.origin
		if o == "" {
			o = scheme + "://" + tc.host
		}
		h := map[string]string{"Origin": o}
		for k, v := range tc.header {
			h[k] = v
		}
		check("tunnel", hostRequest(t, base, tc.host, "/tunnel", h, true), tc.tunnel, http.StatusSwitchingProtocols)
		// Health checks may use any name.
		if got := hostRequest(t, base, tc.host, "/healthz", tc.header, false); got.status != http.StatusOK {
			t.Errorf("%s: /healthz: %d %q", tc.name, got.status, got.body)
		}
	}
	if st := servers["plain"].Stats(); st.RefusedHost != 3*6 || st.RefusedOrigin != 1 {
		t.Errorf("plain gateway: RefusedHost %d (want 18: page, asset and tunnel of six cases), RefusedOrigin %d (want 1)", st.RefusedHost, st.RefusedOrigin)
	}
}

// TestHostCheckPage: the demo page names the tunnel URL the browser knows
// the gateway by, behind a trusted proxy the proxy's.
func TestHostCheckPage(t *testing.T) {
	t.Parallel()
	_, addr := serveOn(t, baseConfig("[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n"), nil)
	for _, tc := range []struct {
		host   string
		header map[string]string
		want   string
	}{
		{"127.0.0.1:8080", nil, "ws://127.0.0.1:8080/tunnel"},
		{"127.0.0.1:8080", map[string]string{"X-Forwarded-Host": "gw.example.com", "X-Forwarded-Proto": "https"}, "wss://gw.example.com/tunnel"},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		req.Host = tc.host
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		resp, err := (&http.Transport{Proxy: nil, DisableKeepAlives: true}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), tc.want) {
			t.Errorf("Host %s %v: %d, the page does not show %s", tc.host, tc.header, resp.StatusCode, tc.want)
		}
		if resp.ContentLength != int64(len(b)) {
			t.Errorf("Content-Length %d for %d bytes", resp.ContentLength, len(b))
		}
	}
}
