package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
)

func TestRenderLive(t *testing.T) {
	t.Parallel()
	now := time.Now()
	const u = "wss://gw/tunnel"
	tests := []struct {
		st   liveState
		want string
	}{
		{liveState{url: u}, "connecting to wss://gw/tunnel | 0 streams | in 0 B/s, out 0 B/s"},
		{liveState{url: u, started: true, state: client.Connected, stats: client.Stats{Tunnels: 1, Streams: 1}, in: 1234, out: 4.5e6},
			"connected to wss://gw/tunnel | 1 stream | in 1.2 kB/s, out 4.5 MB/s"},
		{liveState{url: u, started: true, state: client.Connected, stats: client.Stats{Tunnels: 2, Streams: 300}},
			"connected to wss://gw/tunnel | 300 streams on 2 tunnels | in 0 B/s, out 0 B/s"},
		{liveState{url: u, started: true, state: client.Reconnecting, retryAt: now.Add(3 * time.Second),
			err: &client.TunnelClosedError{Code: 1001, Reason: "the gateway is shutting down", Remote: true}},
			"reconnecting, next try in 3s: the gateway closed the tunnel: the gateway is shutting down (1001) | 0 streams | in 0 B/s, out 0 B/s"},
		{liveState{url: u, started: true, state: client.Reconnecting, retryAt: now.Add(300 * time.Millisecond), err: errors.New("client: tunnel closed")},
			"reconnecting, next try in <1s: tunnel closed | 0 streams | in 0 B/s, out 0 B/s"},
		{liveState{url: u, started: true, state: client.Reconnecting, retryAt: now.Add(-time.Second), err: &client.TimeoutError{Phase: "TLS", After: time.Second}},
			"reconnecting, next try now: TLS timed out after 1s | 0 streams | in 0 B/s, out 0 B/s"},
	}
	for _, tt := range tests {
		if got := renderLive(tt.st, now); got != tt.want {
			t.Errorf("renderLive:\n got %q\nwant %q", got, tt.want)
		}
	}
}

// TestLiveLine drives a liveLine over a fake terminal (a buffer that
// records the bytes a terminal would get) and replays them the way a
// terminal shows them: a carriage return and erase-line redraw the last
// line.
func TestLiveLine(t *testing.T) {
	t.Parallel()
	var term bytes.Buffer
	var out bytes.Buffer
	l := &liveLine{w: &term, width: 20}
	l.set("connecting")
	l.Write([]byte("ferry forward: warning\n"))
	above := l.above(&out)
	above.Write([]byte("forwarding a -> b\n"))
	l.set("connected to a gateway far away")
	l.set("connected to a gateway far away") // unchanged: nothing written
	n := term.Len()
	l.set("connected to a gateway far away")
	if term.Len() != n {
		t.Errorf("an unchanged line was redrawn")
	}
	l.end()
	want := eraseLine + "connecting" +
		eraseLine + "ferry forward: warning\n" + "connecting" +
		eraseLine + "connecting" +
		eraseLine + "connected to a gat…" + "\n"
	if got := term.String(); got != want {
		t.Errorf("terminal bytes:\n got %q\nwant %q", got, want)
	}
	if out.String() != "forwarding a -> b\n" {
		t.Errorf("stdout %q", out.String())
	}
	// What a person sees: each line as last redrawn.
	var shown []string
	for _, line := range strings.Split(term.String(), "\n") {
		parts := strings.Split(line, eraseLine)
		shown = append(shown, parts[len(parts)-1])
	}
	if got := strings.Join(shown, "|"); got != "ferry forward: warning|connected to a gat…|" {
		t.Errorf("the terminal shows %q", got)
	}
}

// TestReporterLines: without a terminal, one plain line per state
// change; a failed reconnect attempt is one "retrying in" line.
func TestReporterLines(t *testing.T) {
	t.Parallel()
	const u = "ws://gw/tunnel"
	var b bytes.Buffer
	r := newReporter("ferry forward", u, &b, false)
	shut := &client.TunnelClosedError{Code: 1001, Reason: "the gateway is shutting down", Remote: true}
	r.status(client.Status{State: client.Connected})
	r.status(client.Status{State: client.Reconnecting, Err: shut, Delay: 1200 * time.Millisecond})
	r.status(client.Status{State: client.Reconnecting, Err: &client.TimeoutError{Phase: "HTTP upgrade", After: time.Second}, Delay: 2 * time.Second})
	r.status(client.Status{State: client.Connected})
	if final := r.status(client.Status{State: client.Closed, Err: &client.RefusedError{Status: 401, Err: errors.New("tunnel: websocket handshake refused: 401 Unauthorized: no credential")}}); !final {
		t.Error("a 401 is not final")
	}
	want := `ferry forward: connected to ws://gw/tunnel
ferry forward: tunnel down: the gateway closed the tunnel: the gateway is shutting down (1001); retrying in 1.2s
ferry forward: retrying in 2s: cannot reach the gateway at ws://gw/tunnel: HTTP upgrade timed out after 1s
ferry forward: reconnected to ws://gw/tunnel
ferry forward: giving up: the gateway at ws://gw/tunnel refused the tunnel: websocket handshake refused: 401 Unauthorized: no credential
`
	if b.String() != want {
		t.Errorf("lines:\n%s\nwant:\n%s", b.String(), want)
	}
	// ferry connect is silent until something goes wrong.
	b.Reset()
	r = newReporter("ferry connect", u, &b, true)
	r.status(client.Status{State: client.Connected})
	if b.Len() != 0 {
		t.Errorf("connect said %q with nothing wrong", b.String())
	}
	r.status(client.Status{State: client.Reconnecting, Err: errors.New("client: tunnel closed"), Delay: time.Second})
	r.status(client.Status{State: client.Connected})
	if want := "ferry connect: tunnel down: tunnel closed; retrying in 1s\nferry connect: reconnected to ws://gw/tunnel\n"; b.String() != want {
		t.Errorf("connect's lines:\n%q\nwant\n%q", b.String(), want)
	}
}
