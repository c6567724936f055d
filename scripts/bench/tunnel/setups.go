//go:build linux

package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ferrygw/ferry/gateway/config"
)

// setupNames lists the setups run by default, in report order; extraSetups
// run only when -setups names them.
var (
	setupNames  = []string{"raw", "relay", "relay3", "ferry", "ferry-nocomp", "ferry-expose", "chisel", "chisel-reverse"}
	extraSetups = []string{"relay-splice", "ferry-expose-nocomp"}
)

// exposeSetups are the setups that reach the backend through a reverse
// tunnel; the others are forward setups.
var exposeSetups = []string{"ferry-expose", "ferry-expose-nocomp"}

// setupDesc says what each setup is, for the report.
var setupDesc = map[string]string{
	"raw":                 "client → backend, plain TCP",
	"relay":               "client → relay1 → relay2 → backend: two io.CopyBuffer relays (32 KiB user-space buffer), separate processes",
	"relay-splice":        "as relay, but io.Copy between *net.TCPConn, which Go does with splice(2): bytes never reach user space",
	"ferry":               "client → ferry forward → ws:// → ferry serve → backend; compression enabled",
	"ferry-nocomp":        "as ferry, gateway [compression] enabled = false",
	"chisel":              "client → chisel client → http:// (SSH over WebSocket) → chisel server → backend; chisel v1.10.1",
	"relay3":              "client → relay1 → relay2 → relay3 → backend: three io.CopyBuffer relays, the hops of the exposed path without framing",
	"ferry-expose":        "client → ferry forward → ws:// → ferry serve → ws:// → ferry expose → backend (a backend = \"expose\" service); compression enabled",
	"ferry-expose-nocomp": "as ferry-expose, gateway [compression] enabled = false",
	"chisel-reverse":      "client → chisel server --reverse → http:// → chisel client R:... → backend: chisel's reverse mode, one process fewer than ferry-expose",
}

// setup is one way of reaching the backend: the address the load goes to
// and the processes between (the server side: relay2, gateway, chisel
// server; the client side: relay1, forward, chisel client; and in the
// three-hop setups the process nearest the backend: relay3, ferry expose).
type setup struct {
	name          string
	addr          string
	srv, cli, exp *proc
}

func (s *setup) procs() []*proc {
	var ps []*proc
	for _, p := range []*proc{s.cli, s.srv, s.exp} {
		if p != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

func (s *setup) stop() {
	for _, p := range s.procs() {
		p.stop()
	}
}

// env is what starting a setup needs.
type env struct {
	self, ferry, chisel string // binaries
	dir                 string // temporary folder for configs, logs, profiles
	profileDir          string // "": run ferry serve and ferry forward; else in-process roles writing CPU profiles here
	mutex               bool   // with profileDir: mutex and block profiles too
	perfDir             string // -perf: perf record files of each window go here
	backend             *proc
	backendAddr         string
	payload             string
	alts                map[string]string // -alt setups: name → ferry binary
	altComp             bool              // -alt setups run with compression enabled
}

// startRole starts this binary in a role and waits for its address.
func (e *env) startRole(name string, args ...string) (*proc, string, error) {
	p, err := startProc(e.dir, name, true, true, e.self, args...)
	if err != nil {
		return nil, "", err
	}
	addr, err := p.waitLine("listening ", 15*time.Second)
	if err != nil {
		p.kill()
		return nil, "", err
	}
	return p, addr, nil
}

func (e *env) startSetup(name string) (*setup, error) {
	s := &setup{name: name}
	var err error
	switch name {
	case "raw":
		s.addr = e.backendAddr
	case "relay", "relay-splice":
		var flags []string
		if name == "relay-splice" {
			flags = []string{"-splice"}
		}
		var a2 string
		s.srv, a2, err = e.startRole(name+"-2", append([]string{"-role", "relay", "-to", e.backendAddr}, flags...)...)
		if err != nil {
			return nil, err
		}
		s.cli, s.addr, err = e.startRole(name+"-1", append([]string{"-role", "relay", "-to", a2}, flags...)...)
	case "relay3":
		var a3, a2 string
		if s.exp, a3, err = e.startRole("relay3-3", "-role", "relay", "-to", e.backendAddr); err != nil {
			break
		}
		if s.srv, a2, err = e.startRole("relay3-2", "-role", "relay", "-to", a3); err != nil {
			break
		}
		s.cli, s.addr, err = e.startRole("relay3-1", "-role", "relay", "-to", a2)
	case "ferry", "ferry-nocomp":
		err = e.startFerryBin(s, e.ferry, name == "ferry", e.profileDir != "")
	case "ferry-expose", "ferry-expose-nocomp":
		err = e.startFerryExpose(s, name == "ferry-expose")
	case "chisel", "chisel-reverse":
		err = e.startChisel(s, name == "chisel-reverse")
	default:
		if bin := e.alts[name]; bin != "" {
			err = e.startFerryBin(s, bin, e.altComp, false)
			break
		}
		return nil, fmt.Errorf("unknown setup %q", name)
	}
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	return s, nil
}

// benchService is the service name of the backend in Ferry's config.
const benchService = "bench"

// exposedService is the service name the exposer serves the backend as.
const exposedService = "bench-exposed"

// writeFerryConfig writes a gateway config with the backend as a public
// service, limits high enough for the idle test, and extra (more TOML) at
// the end; it is checked with config.Parse, as ferry serve will.
func (e *env) writeFerryConfig(name string, compression bool, extra string) (string, error) {
	text := fmt.Sprintf(`# scripts/bench-tunnel: the gateway under test.
[server]
listen = "127.0.0.1:0"
drain_timeout = "0"

[compression]
enabled = %v

[limits]
max_sessions = 100000
max_sessions_per_ip = 100000
max_sessions_per_token = 100000
handshakes_per_second_per_ip = 1000000
max_pending_handshakes = 1000
# Each session reserves its worst case (about 2 MiB with these windows)
# from the budget; 1000 idle sessions outgrow the 1 GiB default, though
# what they really hold, which the idle test measures, is far less.
buffer_budget = "8GiB"

[services.%s]
backend = %q
public = true
description = "The benchmark's sink, echo and source."
`, compression, benchService, e.backendAddr) + extra
	path := filepath.Join(e.dir, name+".toml")
	if _, err := config.Parse(path, []byte(text)); err != nil {
		return "", fmt.Errorf("bench config: %w", err)
	}
	return path, os.WriteFile(path, []byte(text), 0o644)
}

// startFerryBin starts ferry serve and ferry forward from bin or, with
// inproc, this binary's gateway and forward roles with CPU profiles.
func (e *env) startFerryBin(s *setup, bin string, compression, inproc bool) error {
	cfg, err := e.writeFerryConfig(s.name, compression, "")
	if err != nil {
		return err
	}
	var url string
	if inproc {
		// In-process: this binary runs gateway.New+Serve and
		// client.Connect+Forward, exactly what ferry serve and ferry
		// forward run, with a CPU profile.
		args := []string{"-role", "gateway", "-config", cfg, "-cpuprofile", filepath.Join(e.profileDir, s.name+"-gateway.cpu")}
		if e.mutex {
			args = append(args, "-mutexprofile", filepath.Join(e.profileDir, s.name+"-gateway.mutex"))
		}
		var gaddr string
		if s.srv, gaddr, err = e.startRole(s.name+"-gateway", args...); err != nil {
			return err
		}
		url = "ws://" + gaddr + "/tunnel"
		args = []string{"-role", "forward", "-url", url, "-service", benchService, "-cpuprofile", filepath.Join(e.profileDir, s.name+"-forward.cpu")}
		if e.mutex {
			args = append(args, "-mutexprofile", filepath.Join(e.profileDir, s.name+"-forward.mutex"))
		}
		s.cli, s.addr, err = e.startRole(s.name+"-forward", args...)
		return err
	}
	if url, err = e.startServe(s, bin, cfg); err != nil {
		return err
	}
	return e.startForward(s, bin, url, benchService)
}

// startServe starts ferry serve from bin with config cfg as s.srv and
// returns its tunnel URL.
func (e *env) startServe(s *setup, bin, cfg string) (string, error) {
	var err error
	if s.srv, err = startProc(e.dir, s.name+"-serve", false, true, bin, "serve", "-config", cfg, "-listen", "127.0.0.1:0"); err != nil {
		return "", err
	}
	// "ferry: serving http://ADDR/ (tunnel ws://ADDR/tunnel, FILE)"
	line, err := s.srv.waitLine("ferry: serving ", 15*time.Second)
	if err != nil {
		return "", err
	}
	s.srv.drainStdout()
	_, rest, ok := strings.Cut(line, "(tunnel ")
	url, _, _ := strings.Cut(rest, ",")
	if !ok || !strings.HasPrefix(url, "ws://") {
		return "", fmt.Errorf("ferry serve said %q", line)
	}
	return url, nil
}

// startForward starts ferry forward from bin to service as s.cli, and
// sets s.addr to the port it listens on.
func (e *env) startForward(s *setup, bin, url, service string) error {
	var err error
	if s.cli, err = startProc(e.dir, s.name+"-forward", false, true, bin, "forward", url, "127.0.0.1:0="+service); err != nil {
		return err
	}
	// "forwarding 127.0.0.1:PORT -> SERVICE"
	line, err := s.cli.waitLine("forwarding ", 15*time.Second)
	if err != nil {
		return err
	}
	s.cli.drainStdout()
	s.addr, _, _ = strings.Cut(line, " ")
	return nil
}

// startFerryExpose starts the exposed path: ferry serve with a service of
// backend = "expose" and a token that may expose it (and nothing else),
// ferry expose serving that service from the backend's address, which
// the gateway's config does not name for it, and ferry forward to it.
func (e *env) startFerryExpose(s *setup, compression bool) error {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return err
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	tokenFile := filepath.Join(e.dir, s.name+".token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	cfg, err := e.writeFerryConfig(s.name, compression, fmt.Sprintf(`
[services.%s]
backend = "expose"
public = true
description = "The same backend, served by ferry expose."

[[tokens]]
name = "bench-exposer"
sha256 = "%x"
expose = [%q]
`, exposedService, sha256.Sum256([]byte(token)), exposedService))
	if err != nil {
		return err
	}
	url, err := e.startServe(s, e.ferry, cfg)
	if err != nil {
		return err
	}
	if s.exp, err = startProc(e.dir, s.name+"-expose", false, true, e.ferry, "expose", "-token-file", tokenFile, "-id", "bench", url, exposedService+"="+e.backendAddr); err != nil {
		return err
	}
	// "exposing SERVICE -> ADDR (exposer ID)", once registered.
	if _, err := s.exp.waitLine("exposing ", 15*time.Second); err != nil {
		return err
	}
	s.exp.drainStdout()
	return e.startForward(s, e.ferry, url, exposedService)
}

// startChisel starts chisel server and chisel client. Forward: the client
// listens on a port and sends each connection to the server, which dials
// the backend. Reverse (chisel server --reverse, an R: remote): the server
// listens on the port once the client has connected, and sends each
// connection back to the client, which dials the backend. The load goes
// to that port; check waits until it carries, as the client retries until
// the server listens.
func (e *env) startChisel(s *setup, reverse bool) error {
	sp, err := freePort()
	if err != nil {
		return err
	}
	lp, err := freePort()
	if err != nil {
		return err
	}
	args, prefix := []string{"server"}, ""
	if reverse {
		args, prefix = append(args, "--reverse"), "R:"
	}
	if s.srv, err = startProc(e.dir, s.name+"-server", false, false, e.chisel, append(args, "--port", strconv.Itoa(sp), "--host", "127.0.0.1")...); err != nil {
		return err
	}
	_, bport, _ := net.SplitHostPort(e.backendAddr)
	s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(lp))
	remote := fmt.Sprintf("%s127.0.0.1:%d:127.0.0.1:%s", prefix, lp, bport)
	s.cli, err = startProc(e.dir, s.name+"-client", false, false, e.chisel, "client", fmt.Sprintf("http://127.0.0.1:%d", sp), remote)
	return err
}

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
