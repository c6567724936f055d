package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/ferrygw/ferry/client"
)

// liveLine keeps one status line at the bottom of a terminal: Write
// prints lasting lines above it, set replaces it. Safe for concurrent use.
type liveLine struct {
	mu    sync.Mutex
	w     io.Writer
	width int
	text  string // the live line shown now
}

// clear and redraw are the terminal's carriage return and "erase to the
// end of the line".
const eraseLine = "\r\x1b[K"

// Write prints p (whole lines) above the live line.
func (l *liveLine) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := io.WriteString(l.w, eraseLine); err != nil {
		return 0, err
	}
	n, err := l.w.Write(p)
	if err == nil {
		_, err = io.WriteString(l.w, l.fit(l.text))
	}
	return n, err
}

// above returns a writer whose lines go to w (another stream of the same
// terminal, such as stdout) above the live line.
func (l *liveLine) above(w io.Writer) io.Writer { return &aboveWriter{l: l, w: w} }

type aboveWriter struct {
	l *liveLine
	w io.Writer
}

func (a *aboveWriter) Write(p []byte) (int, error) {
	a.l.mu.Lock()
	defer a.l.mu.Unlock()
	io.WriteString(a.l.w, eraseLine)
	n, err := a.w.Write(p)
	io.WriteString(a.l.w, a.l.fit(a.l.text))
	return n, err
}

// set makes text the live line.
func (l *liveLine) set(text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if text == l.text {
		return
	}
	l.text = text
	io.WriteString(l.w, eraseLine+l.fit(text))
}

// end leaves the live line as a lasting one.
func (l *liveLine) end() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.text != "" {
		io.WriteString(l.w, "\n")
		l.text = ""
	}
}

// fit cuts text to the terminal's width, so that it stays one line that
// a carriage return can redraw.
func (l *liveLine) fit(text string) string {
	if r := []rune(text); l.width > 1 && len(r) >= l.width {
		return string(r[:l.width-2]) + "…"
	}
	return text
}

// liveState is what the status line shows.
type liveState struct {
	url     string
	state   client.State
	started bool      // a status arrived: the first dial has happened
	err     error     // why the tunnel is down
	retryAt time.Time // when the next attempt comes
	stats   client.Stats
	in, out float64 // payload bytes per second
}

// renderLive is the status line for st at now.
func renderLive(st liveState, now time.Time) string {
	var b strings.Builder
	switch {
	case !st.started:
		fmt.Fprintf(&b, "connecting to %s", st.url)
	case st.state == client.Connected:
		fmt.Fprintf(&b, "connected to %s", st.url)
	default:
		next := "now"
		if d := st.retryAt.Sub(now); d > 0 {
			next = "in " + d.Round(time.Second).String()
			if d < time.Second {
				next = "in <1s"
			}
		}
		// The reason matters more than the URL, which the line showed
		// while connected: it comes first, before the line is cut.
		fmt.Fprintf(&b, "reconnecting, next try %s: %s", next, reason(st.url, st.err))
	}
	tunnels := ""
	if st.stats.Tunnels > 1 {
		tunnels = fmt.Sprintf(" on %d tunnels", st.stats.Tunnels)
	}
	fmt.Fprintf(&b, " | %d stream%s%s | in %s, out %s", st.stats.Streams, plural(st.stats.Streams), tunnels, rate(st.in), rate(st.out))
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// rate formats bytes per second: "0 B/s", "12.3 kB/s", "4.5 MB/s".
func rate(bps float64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.1f GB/s", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.1f MB/s", bps/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.1f kB/s", bps/1e3)
	}
	return fmt.Sprintf("%.0f B/s", bps)
}

// liveReporter drives a liveLine from a Session's statuses and, once a
// second, its counts.
type liveReporter struct {
	line *liveLine

	mu    sync.Mutex
	st    liveState
	sess  *client.Session
	lastT time.Time
	last  client.Stats
}

// status records a status change and redraws at once. A permanent
// refusal is a lasting line; it returns true for it.
func (r *liveReporter) status(st client.Status, cmd string) bool {
	r.mu.Lock()
	if st.State == client.Closed {
		r.mu.Unlock()
		if st.Err != nil {
			fmt.Fprintf(r.line, "%s: giving up: %s\n", cmd, describe(r.st.url, st.Err))
			return true
		}
		return false
	}
	r.st.started = true
	r.st.state, r.st.err = st.State, st.Err
	r.st.retryAt = time.Now().Add(st.Delay)
	text := renderLive(r.st, time.Now())
	r.mu.Unlock()
	r.line.set(text)
	return false
}

// tick samples the Session's counts and redraws.
func (r *liveReporter) tick(now time.Time) {
	r.mu.Lock()
	if r.sess != nil {
		s := r.sess.Stats()
		if dt := now.Sub(r.lastT).Seconds(); !r.lastT.IsZero() && dt > 0 {
			r.st.in = float64(s.BytesIn-r.last.BytesIn) / dt
			r.st.out = float64(s.BytesOut-r.last.BytesOut) / dt
		}
		r.st.stats, r.last, r.lastT = s, s, now
	}
	text := renderLive(r.st, now)
	r.mu.Unlock()
	r.line.set(text)
}

// run ticks once a second until stop is closed.
func (r *liveReporter) run(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			r.tick(now)
		case <-stop:
			return
		}
	}
}
