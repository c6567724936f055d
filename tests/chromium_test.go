//go:build linux

package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/compress"
	"github.com/ferrygw/ferry/tunnel"
)

// chromiumPath is Debian's chromium launcher.
const chromiumPath = "/usr/bin/chromium"

// chromiumPeer is headless Chromium; only its availability check and
// install hint are used (peer.require).
var chromiumPeer = &peer{
	name: "chromium",
	available: sync.OnceValue(func() error {
		fi, err := os.Stat(chromiumPath)
		if err != nil {
			return err
		}
		if fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%s is not executable", chromiumPath)
		}
		return nil
	}),
	install: "install it with `apt-get install chromium`",
}

// chromiumEndpoints are the echo endpoints the page visits, each accepting
// permessage-deflate with its own options. Chromium always offers
// `permessage-deflate; client_max_window_bits`, so the server's options
// alone decide the parameters.
var chromiumEndpoints = []struct {
	name string
	opts compress.Options
	want compress.Params
}{
	{"takeover", compress.Options{Threshold: -1}, compress.Params{}},
	{"no-context-takeover", compress.Options{Threshold: -1, NoContextTakeover: true},
		compress.Params{ServerNoContextTakeover: true, ClientNoContextTakeover: true}},
	{"default-threshold", compress.Options{}, compress.Params{}},
}

// chromiumSizes are the message sizes the page round-trips, for each of
// text, compressible binary and random binary.
var chromiumSizes = []int{0, 300, 64 << 10, 1 << 20}

// chromiumResult is what the page POSTs to /result.
type chromiumResult struct {
	UserAgent string `json:"userAgent"`
	Error     string `json:"error"` // a failure outside one endpoint
	Endpoints []struct {
		Name       string `json:"name"`
		Extensions string `json:"extensions"` // ws.extensions
		Messages   int    `json:"messages"`   // echoes checked equal
		// Compressible and Random count the payload bytes sent.
		Compressible int64  `json:"compressible"`
		Random       int64  `json:"random"`
		CloseCode    int    `json:"closeCode"`
		Error        string `json:"error"`
	} `json:"endpoints"`
}

// chromiumConn is what our server saw of one page connection.
type chromiumConn struct {
	acceptedConn
	endpoint string
	echoed   int   // messages echoed
	ended    error // why Accept failed or the echo loop stopped
}

// TestChromiumDeflate serves a page to headless Chromium that round-trips
// messages with our echo server (tunnel.Accept) over compressed WebSockets,
// checks them in JavaScript, and POSTs what it saw back to the test.
func TestChromiumDeflate(t *testing.T) {
	t.Parallel()
	chromiumPeer.require(t)

	// ended receives each page connection once our side of it ended.
	ended := make(chan *chromiumConn, 2*len(chromiumEndpoints))
	results := make(chan chromiumResult, 1)
	mux := http.NewServeMux()
	for _, ep := range chromiumEndpoints {
		opts := ep.opts
		mux.HandleFunc("/ws/"+ep.name, func(w http.ResponseWriter, r *http.Request) {
			cc := &chromiumConn{endpoint: ep.name}
			defer func() {
				select {
				case ended <- cc:
				default:
				}
			}()
			c, err := tunnel.Accept(w, r, &tunnel.AcceptOptions{ReadLimit: interopReadLimit, Compression: &opts})
			if err != nil {
				cc.ended = err
				return
			}
			defer c.CloseNow()
			cc.params, cc.deflate = c.Compression()
			cc.wire = wireOf(r)
			ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
			defer cancel()
			var buf []byte
			for {
				typ, msg, err := c.ReadAppend(ctx, buf[:0])
				if err == nil {
					// Every second echo goes out as fragments.
					buf = msg
					err = send(ctx, c, typ, msg, cc.echoed%2 == 1)
				}
				if err != nil {
					cc.ended = err
					break
				}
				cc.echoed++
			}
		})
	}
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		names := make([]string, len(chromiumEndpoints))
		for i, ep := range chromiumEndpoints {
			names[i] = ep.name
		}
		cfg, _ := json.Marshal(map[string]any{"endpoints": names, "sizes": chromiumSizes})
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, chromiumPage, cfg)
	})
	mux.HandleFunc("POST /result", func(w http.ResponseWriter, r *http.Request) {
		var res chromiumResult
		if err := json.NewDecoder(r.Body).Decode(&res); err != nil {
			res.Error = "bad result: " + err.Error()
		}
		select {
		case results <- res:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	})
	srv := newCountingServer(mux)
	t.Cleanup(srv.Close)

	browser := startChromium(t, srv.URL+"/")
	var res chromiumResult
	select {
	case res = <-results:
	case <-browser.exited:
		t.Fatalf("chromium exited before the page reported: %v\nstderr:\n%s", browser.waitErr, browser.stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("the page reported nothing within 60s\nchromium stderr:\n%s", browser.stderr)
	}
	if res.Error != "" {
		t.Fatalf("page: %s", res.Error)
	}
	t.Logf("browser: %s", res.UserAgent)
	if len(res.Endpoints) != len(chromiumEndpoints) {
		t.Fatalf("page reported %d endpoints, want %d", len(res.Endpoints), len(chromiumEndpoints))
	}
	// The page ran the endpoints one after the other, and each closing
	// handshake ends our side too, at most moments after the page's.
	conns := map[string]*chromiumConn{}
	for len(conns) < len(chromiumEndpoints) {
		select {
		case cc := <-ended:
			conns[cc.endpoint] = cc
		case <-time.After(10 * time.Second):
			t.Fatalf("our server saw %d page connections end, want %d", len(conns), len(chromiumEndpoints))
		}
	}
	for i, ep := range chromiumEndpoints {
		got := res.Endpoints[i]
		if got.Name != ep.name {
			t.Errorf("endpoint %d: page reported %q, want %q", i, got.Name, ep.name)
			continue
		}
		if got.Error != "" {
			t.Errorf("%s: page: %s", ep.name, got.Error)
			continue
		}
		// ws.extensions is the Sec-WebSocket-Extensions response header.
		if want := ep.want.String(); got.Extensions != want {
			t.Errorf("%s: ws.extensions = %q, want %q", ep.name, got.Extensions, want)
		}
		wantMessages := 3 * len(chromiumSizes)
		if got.Messages != wantMessages {
			t.Errorf("%s: page checked %d echoes, want %d", ep.name, got.Messages, wantMessages)
		}
		if got.CloseCode != int(tunnel.StatusNormalClosure) {
			t.Errorf("%s: page saw close code %d, want 1000", ep.name, got.CloseCode)
		}
		cc := conns[ep.name]
		if !cc.deflate || cc.params != ep.want {
			t.Errorf("%s: our Compression() = %+v, %v; want %+v, true", ep.name, cc.params, cc.deflate, ep.want)
		}
		if cc.echoed != wantMessages {
			t.Errorf("%s: our server echoed %d messages, want %d", ep.name, cc.echoed, wantMessages)
		}
		if err := checkCloseError(cc.ended, &tunnel.CloseError{Code: tunnel.StatusNormalClosure}); err != nil {
			t.Errorf("%s: our side: %v", ep.name, err)
		}
		if err := checkWire(ep.name+": we sent", cc.wire.written.Load(), got.Compressible, got.Random); err != nil {
			t.Error(err)
		}
		if err := checkWire(ep.name+": chromium sent", cc.wire.read.Load(), got.Compressible, got.Random); err != nil {
			t.Error(err)
		}
	}
}

// browserProcess is a running Chromium.
type browserProcess struct {
	exited  chan struct{} // closed when the browser process has ended
	waitErr error         // how it ended, once exited is closed
	stderr  *syncBuffer
}

// startChromium runs headless Chromium on url, with a fresh profile, HOME
// and TMPDIR in a temporary folder. When the test ends it stops the browser
// (SIGTERM, which lets it end its children, for up to 5s), then kills with
// SIGKILL its process group and its crash handlers (which put themselves in
// groups of their own but name the folder on their command line), and waits
// until none of them runs. Should the test process die first, the browser
// gets SIGKILL (Pdeathsig) and its children and crash handlers follow it.
func startChromium(t *testing.T, url string) *browserProcess {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"profile", "home", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(chromiumPath,
		"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--disable-quic",
		"--user-data-dir="+filepath.Join(dir, "profile"),
		url)
	cmd.Env = append(os.Environ(),
		"HOME="+filepath.Join(dir, "home"),
		"TMPDIR="+filepath.Join(dir, "tmp"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "home", ".config"),
		"XDG_CACHE_HOME="+filepath.Join(dir, "home", ".cache"),
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	b := &browserProcess{exited: make(chan struct{}), stderr: &syncBuffer{}}
	cmd.Stdout = b.stderr
	cmd.Stderr = b.stderr
	// Children that inherited the output pipe must not hold up Wait.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	pgid := cmd.Process.Pid // Setpgid: the group is named after the leader
	go func() {
		b.waitErr = cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(func() {
		// A graceful stop lets the browser end its own children.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.exited:
		case <-time.After(5 * time.Second):
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			left := browserProcesses(pgid, dir)
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			if len(left) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("chromium processes %v still run after SIGKILL", left)
				break
			}
			// Wait for the kernel to end them before looking again.
			time.Sleep(10 * time.Millisecond)
		}
		<-b.exited
	})
	return b
}

// browserProcesses lists, from /proc, the live (not zombie) processes of
// process group pgid and those whose command line mentions dir.
func browserProcesses(pgid int, dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // the process has gone
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			pids = append(pids, pid)
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(dir)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// chromiumPage is the test page; %s is a JSON object with the endpoint
// names and message sizes. It posts a chromiumResult to /result.
const chromiumPage = `<!doctype html>
<meta charset="utf-8">
<title>ferry permessage-deflate</title>
<script>
"use strict";
const config = %s;

// size bytes of UTF-8 text that mixes 1- and 2-byte runes; a rune cut at
// the end becomes a space (the Go tests' payload).
function textPayload(size) {
  const unit = new TextEncoder().encode("ferry-\u03c4 ");
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = unit[i %% unit.length];
  if (size > 0 && b[size - 1] >= 0xc0) b[size - 1] = 0x20;
  return new TextDecoder("utf-8", { fatal: true }).decode(b);
}

// size bytes of compressible binary: 16-byte records, a big-endian record
// number and 12 fixed bytes that are not UTF-8.
function binaryPayload(size) {
  const tail = [0x00, 0xff, 0x66, 0x65, 0x72, 0x72, 0x79, 0x80, 0x01, 0xfe, 0x7f, 0x00];
  const b = new Uint8Array(Math.ceil(size / 16) * 16);
  const view = new DataView(b.buffer);
  for (let i = 0; i * 16 < size; i++) {
    view.setUint32(i * 16, i);
    b.set(tail, i * 16 + 4);
  }
  return b.subarray(0, size);
}

function randomPayload(size) {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) {
    crypto.getRandomValues(b.subarray(i, Math.min(size, i + 65536)));
  }
  return b;
}

function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// roundTrips runs one endpoint and returns what it saw.
async function roundTrips(name) {
  const out = { name, extensions: "", messages: 0, compressible: 0, random: 0, closeCode: 0, error: "" };
  const ws = new WebSocket("ws://" + location.host + "/ws/" + name);
  ws.binaryType = "arraybuffer";
  const queue = [];
  let waiting = null;
  const push = (item) => {
    if (waiting) { const w = waiting; waiting = null; w(item); } else queue.push(item);
  };
  ws.onmessage = (ev) => push({ data: ev.data });
  const closed = new Promise((resolve) => {
    ws.onclose = (ev) => { push({ closed: ev.code }); resolve(ev); };
  });
  const next = () => queue.length > 0 ? Promise.resolve(queue.shift()) : new Promise((r) => { waiting = r; });
  try {
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error("WebSocket error before open"));
    });
    out.extensions = ws.extensions;
    if (!ws.extensions.includes("permessage-deflate")) {
      throw new Error("permessage-deflate was not negotiated: ws.extensions = " + JSON.stringify(ws.extensions));
    }
    for (const size of config.sizes) {
      for (const kind of ["text", "binary", "random"]) {
        const what = kind + " message of " + size + " bytes";
        const want = kind === "text" ? textPayload(size) : kind === "binary" ? binaryPayload(size) : randomPayload(size);
        if (kind === "random") out.random += size; else out.compressible += size;
        ws.send(want);
        const got = await next();
        if (got.closed !== undefined) throw new Error(what + ": connection closed with " + got.closed);
        if (kind === "text") {
          if (typeof got.data !== "string") throw new Error(what + " came back as binary");
          if (got.data !== want) throw new Error(what + " came back different (" + got.data.length + " UTF-16 units)");
        } else {
          if (!(got.data instanceof ArrayBuffer)) throw new Error(what + " came back as text");
          if (!sameBytes(new Uint8Array(got.data), want)) throw new Error(what + " came back different (" + got.data.byteLength + " bytes)");
        }
        out.messages++;
      }
    }
    ws.close(1000, "done");
    out.closeCode = (await closed).code;
  } catch (e) {
    out.error = String(e && e.stack || e);
    ws.close();
  }
  return out;
}

async function main() {
  const result = { userAgent: navigator.userAgent, error: "", endpoints: [] };
  try {
    for (const name of config.endpoints) result.endpoints.push(await roundTrips(name));
  } catch (e) {
    result.error = String(e && e.stack || e);
  }
  await fetch("/result", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(result) });
  document.title = "done";
}

main();
</script>
`
