package config

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Config is the gateway's whole configuration. Parse and Load return it
// with every default filled in and every rule checked; a Config built or
// changed in Go can be checked with Validate. The gateway reads a Config and
// never changes it; a reload parses a new one.
type Config struct {
	File        string              `toml:"-"` // the path it was loaded from, "" for the embedded default
	Server      Server              `toml:"server"`
	Compression Compression         `toml:"compression"`
	Limits      Limits              `toml:"limits"`
	Auth        Auth                `toml:"auth"`
	Network     Network             `toml:"network"`
	Admin       Admin               `toml:"admin"`
	Log         Log                 `toml:"log"`
	Tokens      []Token             `toml:"tokens"`
	Services    map[string]*Service `toml:"services"` // key = service name; never nil after Parse
}

// Server is the [server] table: where and how the gateway listens.
type Server struct {
	// Listen is "host:port" ("127.0.0.1:8080"); an empty host means every
	// interface, port 0 any free port.
	Listen string `toml:"listen" check:"listen"`
	// TunnelPath is the WebSocket endpoint ("/tunnel"): a clean absolute
	// path other than "/", "/healthz" and "/ferry/...".
	TunnelPath string `toml:"tunnel_path" check:"path"`
	// AllowedOrigins lists the browser origins besides the gateway's own
	// that may open tunnels: exact origins "https://app.example.com" or
	// patterns "https://*.example.com" (one or more labels below the
	// domain, same scheme and port). See Server.AllowsOrigin.
	AllowedOrigins []string `toml:"allowed_origins" check:"origin"`
	// AllowedHosts lists the host names (no ports) that the gateway answers
	// besides IP literals, "localhost" and names under ".localhost": exact
	// names "gw.example.com" (any case, trailing dot ignored) or patterns
	// "*.example.com" (one or more labels below the domain). Empty, it
	// binds plaintext listeners only: over TLS every name passes. Set, it
	// holds on every listener. See Server.AllowsHost.
	AllowedHosts []string `toml:"allowed_hosts" check:"allowed-host"`
	// TrustedProxies are the peers whose X-Forwarded-For is believed (a
	// bare address in the file means /32 or /128), and whose
	// X-Forwarded-Host and X-Forwarded-Proto stand in for Host and scheme.
	TrustedProxies []netip.Prefix `toml:"trusted_proxies"`
	// TLSCert and TLSKey are PEM files; both or neither. Parse makes a
	// relative path relative to the config file's folder.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// HandshakeTimeout bounds the HTTP request and WebSocket upgrade
	// (more than 0).
	HandshakeTimeout Duration `toml:"handshake_timeout"`
	// Keepalive is how long a tunnel may be silent before the gateway
	// pings it, and how long a ping may then go unanswered, with nothing
	// moving either way, before the peer is dead (more than 0; see
	// tunnel.MuxConn.KeepAlive).
	Keepalive Duration `toml:"keepalive"`
	// IdleTimeout closes a session that has had no open stream for this
	// long; 0 means never.
	IdleTimeout Duration `toml:"idle_timeout"`
	// DrainTimeout is how long a shutdown or reload waits for open streams
	// before it closes them; 0 closes them at once.
	DrainTimeout Duration `toml:"drain_timeout"`
}

// Compression is the [compression] table: permessage-deflate (RFC 7692).
type Compression struct {
	Enabled         bool     `toml:"enabled"`          // offer/accept permessage-deflate
	Threshold       ByteSize `toml:"threshold"`        // messages smaller than this are sent uncompressed
	ContextTakeover bool     `toml:"context_takeover"` // keep the deflate window between messages (better ratio, more memory per session)
}

// Limits is the [limits] table. Every count is at least 1; there is no
// "unlimited".
type Limits struct {
	MaxSessions          int `toml:"max_sessions"`
	MaxSessionsPerIP     int `toml:"max_sessions_per_ip"`
	MaxSessionsPerToken  int `toml:"max_sessions_per_token"`
	MaxStreamsPerSession int `toml:"max_streams_per_session"`
	// MaxMessageSize bounds a WebSocket message, also after inflating
	// (from 1KiB to 1GiB). A client's messages carry one yamux frame, at
	// most StreamWindow of body and a 12-byte header.
	MaxMessageSize           ByteSize `toml:"max_message_size"`
	HandshakesPerSecondPerIP float64  `toml:"handshakes_per_second_per_ip"` // more than 0
	MaxPendingHandshakes     int      `toml:"max_pending_handshakes"`
	DialTimeout              Duration `toml:"dial_timeout"` // more than 0
	// MaxExposersPerService bounds the clients that may expose one
	// service at once (at least 1).
	MaxExposersPerService int `toml:"max_exposers_per_service"`
	// StreamWindow is the receive window the gateway grants each stream
	// (256KiB to 16MiB): what a client may send ahead of the backend
	// reading it, and so what each stream may make the gateway buffer.
	StreamWindow ByteSize `toml:"stream_window"`
	// BufferBudget bounds the data the whole gateway may buffer for its
	// sessions (at least 16MiB, and at least one session's worst case).
	// Every session reserves its fixed share when it is accepted and every
	// stream its window when it is opened; what does not fit is refused as
	// busy. See SessionWorst; gateway.toml shows the sums.
	BufferBudget ByteSize `toml:"buffer_budget"`
}

// Auth is the [auth] table: signed tokens (JWTs). At most one key file may
// be set; the audience and issuer need one. Parse makes relative paths
// relative to the config file's folder.
type Auth struct {
	JWTSecretFile    string `toml:"jwt_secret_file"`     // HS256 secret
	JWTPublicKeyFile string `toml:"jwt_public_key_file"` // PEM public key, RS256 or EdDSA
	JWTAudience      string `toml:"jwt_audience"`        // if set, a JWT's aud must contain it
	JWTIssuer        string `toml:"jwt_issuer"`          // if set, a JWT's iss must equal it
}

// Network is the [network] table.
type Network struct {
	// Deny lists the ranges a backend's resolved address may never be in.
	// A deny in the file replaces the default list; see Network.Denies.
	Deny []netip.Prefix `toml:"deny"`
}

// defaultDeny returns the default [network] deny list.
func defaultDeny() []netip.Prefix {
	return []netip.Prefix{
		// IPv4 link-local, home of the cloud metadata services at
		// 169.254.169.254 (AWS, GCP, Azure, Oracle, DigitalOcean) and
		// 169.254.170.2 (AWS ECS task credentials).
		netip.MustParsePrefix("169.254.0.0/16"),
		// IPv6 link-local: neighbours on the gateway's own segment.
		netip.MustParsePrefix("fe80::/10"),
		// IPv4 multicast: TCP cannot use it; a backend resolving there is
		// an error or a trick.
		netip.MustParsePrefix("224.0.0.0/4"),
		// IPv6 multicast, likewise.
		netip.MustParsePrefix("ff00::/8"),
		// Alibaba Cloud's metadata service, outside link-local.
		netip.MustParsePrefix("100.100.100.200/32"),
		// AWS's IPv6 metadata service (IMDS on Nitro instances).
		netip.MustParsePrefix("fd00:ec2::254/128"),
		// "This network": a connect to 0.0.0.0 reaches the local host on
		// Linux and would bypass a deny of 127.0.0.0/8.
		netip.MustParsePrefix("0.0.0.0/8"),
	}
}

// checkDenied refuses a backend written as an IP literal inside the deny
// list: the gateway would refuse every stream to it. A host name is
// resolved, and checked, at each dial.
func (n *Network) checkDenied(backend string) error {
	host, _, err := net.SplitHostPort(backend)
	if err != nil {
		return nil // checkBackend says why
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return nil
	}
	for _, p := range n.Deny {
		if p.Contains(addr.Unmap().WithZone("")) {
			return fmt.Errorf("%s is inside network.deny (%s): every stream to it would be refused", host, p)
		}
	}
	return nil
}

// Denies reports whether a backend at addr must not be dialed. An
// IPv4-mapped IPv6 address is checked as the IPv4 address it carries.
func (n *Network) Denies(addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	for _, p := range n.Deny {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Admin is the [admin] table: a second listener for metrics and readiness.
type Admin struct {
	Listen string `toml:"listen" check:"listen-or-empty"` // "host:port"; "" = off
}

// Log is the [log] table: the gateway's log lines (log/slog).
type Log struct {
	Format string `toml:"format" check:"log-format"` // "text" (the default) or "json"
	Level  string `toml:"level" check:"log-level"`   // "debug", "info" (the default), "warn" or "error"
}

// LogFormats and LogLevels are the values of [log] format and level.
var (
	LogFormats = []string{"text", "json"}
	LogLevels  = []string{"debug", "info", "warn", "error"}
)

// SlogLevel returns the level as a slog.Level (info when unset).
func (l *Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Token is one [[tokens]] entry: a static bearer token, stored as its hash.
type Token struct {
	Name string `toml:"name"` // optional, unique; shown in logs and metrics instead of the token
	// SHA256 is the lowercase hex SHA-256 of the token's UTF-8 bytes (see
	// HashToken), never the token.
	SHA256 string `toml:"sha256" check:"sha256"`
	// Services names the services the token may open, each defined under
	// [services]; "*", which must then be the only entry, means every
	// service, private ones included. See Token.Allows.
	Services []string `toml:"services" check:"token-service"`
	// Expose names the services (each with backend = "expose") that the
	// token may expose with `ferry expose`. A token may expose without
	// opening anything: Services may then be empty.
	Expose []string `toml:"expose" check:"token-service"`
}

// Exposes reports whether t may expose the named service.
func (t *Token) Exposes(service string) bool { return slices.Contains(t.Expose, service) }

// Allows reports whether t may open the named service.
func (t *Token) Allows(service string) bool {
	for _, s := range t.Services {
		if s == "*" || s == service {
			return true
		}
	}
	return false
}

// HashToken returns what a [[tokens]] sha256 holds for token: the lowercase
// hex SHA-256 of its UTF-8 bytes.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Service is one [services.NAME] table: a backend that clients open by name.
type Service struct {
	// Name is the table's key: 1 to 63 of a-z, 0-9, ".", "_", "-",
	// starting with a letter or digit (so never "*").
	Name string `toml:"-"`
	// Backend is "host:port" ("127.0.0.1:6379", "[::1]:6379",
	// "db.internal:5432"; port 1-65535), "builtin:NAME" (see Builtins) or
	// "expose" (ExposeBackend: whichever client exposes the service).
	Backend string `toml:"backend" check:"backend"`
	// Public services may be opened without a credential.
	Public bool `toml:"public"`
	// Description is free text for people, and the doc comment of the
	// service's function in generated SDKs.
	Description string `toml:"description"`
	// Framing tells generated SDKs how the service's bytes form messages:
	// "raw" (a byte stream, the default), "lines" (UTF-8 text, each
	// message ended by "\n"; a "\r" before it is stripped on receive) or
	// "u32be" (each message after its length as a 4-byte big-endian
	// integer). The gateway itself only pipes bytes. See Framings.
	Framing string `toml:"framing" check:"framing"`
	// MaxMessage is the largest message a generated SDK sends or accepts
	// on a framed service, not counting the "\n" or the 4-byte length
	// (from 1B to 1GiB; default 1MiB). Only framed services have one.
	MaxMessage ByteSize `toml:"max_message"`
}

// ExposeBackend is the backend of a service that clients expose (`ferry
// expose`): the gateway's streams to it go to a connected exposer.
const ExposeBackend = "expose"

// Exposed reports whether the service's backend is an exposer.
func (s *Service) Exposed() bool { return s.Backend == ExposeBackend }

// Framings are the values of a service's framing.
var Framings = []string{"raw", "lines", "u32be"}

// DefaultMaxMessage is a framed service's max_message when it sets none.
const DefaultMaxMessage = 1 * MiB

// FramingName returns the service's framing, "raw" when it is "" (in a
// Config built in Go).
func (s *Service) FramingName() string {
	if s.Framing == "" {
		return "raw"
	}
	return s.Framing
}

// Framed reports whether generated SDKs carry the service's bytes as
// messages.
func (s *Service) Framed() bool { return s.Framing == "lines" || s.Framing == "u32be" }

// Builtin returns NAME for a backend "builtin:NAME", else "".
func (s *Service) Builtin() string {
	name, _ := strings.CutPrefix(s.Backend, "builtin:")
	if name == s.Backend {
		return ""
	}
	return name
}

// AllowsOrigin reports whether a browser origin is listed in
// AllowedOrigins, exactly or by a "scheme://*.domain" pattern. Same-origin
// requests, always allowed, are the caller's to detect.
func (s *Server) AllowsOrigin(origin string) bool {
	for _, p := range s.AllowedOrigins {
		if matchOrigin(p, origin) {
			return true
		}
	}
	return false
}

// AllowsHost reports whether a host name is listed in AllowedHosts,
// exactly or by a "*.domain" pattern (one or more labels below domain,
// not domain itself). name must be lowercase, without port and trailing
// dot. IP literals and localhost, which the gateway always answers, are
// the caller's to detect.
func (s *Server) AllowsHost(name string) bool {
	for _, p := range s.AllowedHosts {
		p = strings.ToLower(strings.TrimSuffix(p, "."))
		if domain, ok := strings.CutPrefix(p, "*."); ok {
			if sub, ok := strings.CutSuffix(name, "."+domain); ok && !strings.HasSuffix(sub, ".") && isHostname(sub) {
				return true
			}
		} else if p == name {
			return true
		}
	}
	return false
}

// ServiceNames returns the names of the services, sorted.
func (c *Config) ServiceNames() []string {
	names := make([]string, 0, len(c.Services))
	for name := range c.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// defaults returns the values that hold for every key a file leaves out:
// no tokens and no services.
func defaults() *Config {
	return &Config{
		Server: Server{
			Listen:           "127.0.0.1:8080",
			TunnelPath:       "/tunnel",
			AllowedOrigins:   []string{},
			AllowedHosts:     []string{},
			TrustedProxies:   []netip.Prefix{},
			HandshakeTimeout: Duration{10 * time.Second},
			Keepalive:        Duration{25 * time.Second},
			DrainTimeout:     Duration{30 * time.Second},
		},
		Compression: Compression{Enabled: true, Threshold: 256, ContextTakeover: true},
		Limits: Limits{
			MaxSessions:              10000,
			MaxSessionsPerIP:         100,
			MaxSessionsPerToken:      100,
			MaxStreamsPerSession:     64,
			MaxMessageSize:           512 * KiB,
			HandshakesPerSecondPerIP: 20,
			MaxPendingHandshakes:     1000,
			DialTimeout:              Duration{5 * time.Second},
			MaxExposersPerService:    16,
			StreamWindow:             256 * KiB,
			BufferBudget:             1 * GiB,
		},
		Network:  Network{Deny: defaultDeny()},
		Log:      Log{Format: "text", Level: "info"},
		Services: map[string]*Service{},
	}
}

//go:embed default.toml
var defaultTOML []byte

// DefaultTOML returns the text of the embedded default config.
func DefaultTOML() []byte { return slices.Clone(defaultTOML) }

// Default returns the config that `ferry serve` runs without -config: the
// embedded default.toml, listening on 127.0.0.1:8080 with one public
// service, "echo" (builtin:echo). Each call returns a new Config.
func Default() *Config {
	c, err := Parse("", defaultTOML)
	if err != nil {
		panic("config: embedded default.toml: " + err.Error())
	}
	return c
}

// Load reads and parses the config file at path. A file that cannot be read
// is an error naming it (errors.Is(err, fs.ErrNotExist) when it is missing);
// a file with problems returns Errors.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// resolvePaths makes the relative file paths of c relative to dir.
func (c *Config) resolvePaths(dir string) {
	for _, p := range []*string{&c.Server.TLSCert, &c.Server.TLSKey, &c.Auth.JWTSecretFile, &c.Auth.JWTPublicKeyFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}
