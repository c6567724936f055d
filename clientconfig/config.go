package clientconfig

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/ferrygw/ferry/gateway/config"
)

// Forward is one local listener and the service it forwards to.
type Forward struct {
	Listen  string // host:port; port 0 picks a free port
	Service string
	Public  bool // Listen is not a loopback address: reachable from the network
}

// Profile is one set of client settings: the top level of a file, or a
// profile merged over it. Empty strings and zero durations are unset.
type Profile struct {
	Name      string // "" for the top level
	Gateway   string // the tunnel URL, ws:// or wss://
	Token     string
	TokenFile string // made absolute against the file's folder
	CA        string // made absolute against the file's folder
	Pin       string
	Proxy     string
	Headers   []string // "Name: value"
	Timeout   time.Duration
	Wait      time.Duration
	Once      bool
	Forwards  []Forward         // sorted by Listen
	Expose    map[string]string // service = local address

	set map[string]bool // the keys the file sets
}

// File is a parsed client config.
type File struct {
	Path     string
	Top      Profile
	Profiles map[string]*Profile // as written, before merging
}

// Load reads and parses the file at path.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, config.Errors{{File: path, Msg: err.Error()}}
	}
	return Parse(path, data)
}

// Parse parses a client config, naming file in errors; relative paths in
// it are taken against file's folder.
func Parse(file string, data []byte) (*File, error) {
	var top map[string]any
	if _, err := toml.Decode(string(data), &top); err != nil {
		e := &config.Error{File: file, Msg: err.Error()}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			e.Msg, e.Line, e.Column = pe.Message, pe.Position.Line, pe.Position.Col
		}
		return nil, config.Errors{e}
	}
	d := &decoder{dir: filepath.Dir(file)}
	f := &File{Path: file, Profiles: map[string]*Profile{}}
	d.profile(top, &f.Top, "", true)
	if ps, ok := top["profiles"]; ok {
		m, ok := ps.(map[string]any)
		if !ok {
			d.fail("profiles", false, "want a table of profiles: [profiles.NAME]")
		}
		for name, v := range m {
			path := "profiles." + quoteKey(name)
			pm, ok := v.(map[string]any)
			if !ok {
				d.fail(path, false, "want a table: [%s]", path)
				continue
			}
			p := &Profile{Name: name}
			d.profile(pm, p, path+".", false)
			f.Profiles[name] = p
		}
	}
	// Each profile as it will be used, so that a cross-key problem is
	// found now rather than when the profile is picked.
	d.check(&f.Top, "")
	for name, p := range f.Profiles {
		m := merge(&f.Top, p)
		d.check(m, "profiles."+quoteKey(name)+".")
	}
	if len(d.problems) > 0 {
		return nil, d.errors(file, string(data))
	}
	return f, nil
}

// Select returns the named profile merged over the top level, or the top
// level for "". It needs a gateway and at least one forward.
func (f *File) Select(name string) (*Profile, error) {
	p := &f.Top
	if name != "" {
		q, ok := f.Profiles[name]
		if !ok {
			var names []string
			for n := range f.Profiles {
				names = append(names, n)
			}
			slices.Sort(names)
			have := "it has none"
			if len(names) > 0 {
				have = "it has " + strings.Join(names, ", ")
			}
			return nil, config.Errors{{File: f.Path, Msg: fmt.Sprintf("no profile %q: %s", name, have)}}
		}
		p = merge(&f.Top, q)
	}
	where := ""
	if name != "" {
		where = "profiles." + quoteKey(name) + "."
	}
	switch {
	case p.Gateway == "":
		return nil, config.Errors{{File: f.Path, Key: where + "gateway", Msg: `no gateway: set gateway = "wss://gw.example.com/tunnel"`}}
	case len(p.Forwards) == 0 && len(p.Expose) == 0:
		return nil, config.Errors{{File: f.Path, Key: where + "forward", Msg: `nothing to forward: add a [forward] table with lines like "6379" = "redis" (or an [expose] table for ferry expose)`}}
	}
	return p, nil
}

// merge returns p with every key it does not set taken from top; a
// profile's [forward] or [expose] table replaces the top level's.
func merge(top, p *Profile) *Profile {
	m := *p
	m.set = map[string]bool{}
	pick := func(key string) bool {
		if p.set[key] {
			m.set[key] = true
			return false
		}
		if top.set[key] {
			m.set[key] = true
		}
		return true
	}
	if pick("gateway") {
		m.Gateway = top.Gateway
	}
	if pick("token") {
		m.Token = top.Token
	}
	if pick("token_file") {
		m.TokenFile = top.TokenFile
	}
	if pick("ca") {
		m.CA = top.CA
	}
	if pick("pin") {
		m.Pin = top.Pin
	}
	if pick("proxy") {
		m.Proxy = top.Proxy
	}
	if pick("headers") {
		m.Headers = top.Headers
	}
	if pick("timeout") {
		m.Timeout = top.Timeout
	}
	if pick("wait") {
		m.Wait = top.Wait
	}
	if pick("once") {
		m.Once = top.Once
	}
	if pick("forward") {
		m.Forwards = top.Forwards
	}
	if pick("expose") {
		m.Expose = top.Expose
	}
	return &m
}

// ParseForward checks one forward: listen is host:port or a bare port (on
// 127.0.0.1, like ssh -L), port 0 picks a free port, and service is a
// service name.
func ParseForward(listen, service string) (Forward, error) {
	host, port := "127.0.0.1", listen
	if strings.Contains(listen, ":") {
		var err error
		if host, port, err = net.SplitHostPort(listen); err != nil {
			return Forward{}, fmt.Errorf("listen address %q is not host:port or a port: %v", listen, strings.TrimPrefix(err.Error(), "address "+listen+": "))
		}
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return Forward{}, fmt.Errorf("port %q is not a port number (1-65535, or 0 for a free one)", port)
	}
	if !config.ValidServiceName(service) {
		return Forward{}, fmt.Errorf("%q is not a service name (lowercase letters, digits, . _ -)", service)
	}
	public := true
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() || host == "localhost" {
		public = false
	}
	return Forward{Listen: net.JoinHostPort(host, port), Service: service, Public: public}, nil
}

// CheckGateway checks a tunnel URL.
func CheckGateway(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q: %v", raw, err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, fmt.Errorf("%q: want ws:// or wss://, e.g. wss://gw.example.com/tunnel", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q: no host", raw)
	}
	return u, nil
}
