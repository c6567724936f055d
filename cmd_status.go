package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/ferrygw/ferry/client"
)

// reporter turns a Session's status changes into lines on stderr: one
// plain line per change. A quiet reporter (ferry connect, whose stdout is
// a pipe and whose stderr is often the user's ssh session) stays silent
// until something goes wrong.
type reporter struct {
	cmd, url string
	w        io.Writer
	quiet    bool
	once     bool // -once: the first failure ends the command

	mu        sync.Mutex
	connected bool // the last state was Connected
	ever      bool // a tunnel was up once
	troubled  bool // a failure was reported
	final     bool // a permanent refusal was reported
}

func newReporter(cmd, url string, w io.Writer, quiet bool) *reporter {
	return &reporter{cmd: cmd, url: url, w: w, quiet: quiet}
}

// status reports st; it returns true for the permanent refusal that ends
// the Session.
func (r *reporter) status(st client.Status) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	line, final := r.line(st)
	if line != "" {
		fmt.Fprintf(r.w, "%s: %s\n", r.cmd, line)
	}
	return final
}

// line is the text for st, or "" when st is not reported; r.mu is held.
func (r *reporter) line(st client.Status) (string, bool) {
	switch st.State {
	case client.Connected:
		was := r.ever
		r.connected, r.ever = true, true
		switch {
		case r.quiet && !r.troubled:
			return "", false
		case was:
			return "reconnected to " + r.url, false
		}
		return "connected to " + r.url, false
	case client.Reconnecting:
		wasUp := r.connected
		r.connected = false
		if movedOn(st.Err) && st.Delay == 0 {
			if r.quiet {
				return "", false
			}
			return reason(r.url, st.Err) + "; moving to a new tunnel", false
		}
		r.troubled = true
		if r.once {
			r.final = true
			return fmt.Sprintf("tunnel down: %s; exiting (-once)", describeAttempt(r.url, st.Err)), true
		}
		if wasUp {
			// The tunnel was up: "cannot reach" would be wrong.
			return fmt.Sprintf("tunnel down: %s; %s", reason(r.url, st.Err), retryIn(st.Delay)), false
		}
		return fmt.Sprintf("%s: %s", retryIn(st.Delay), describeAttempt(r.url, st.Err)), false
	case client.Closed:
		r.connected = false
		if st.Err == nil || r.quiet {
			// ferry connect says it with the Dial's error.
			return "", st.Err != nil
		}
		r.final, r.troubled = true, true
		return "giving up: " + describe(r.url, st.Err), true
	}
	return "", false
}

// lockedWriter serializes the writes of several goroutines to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// dedup prints lines, but a line like the last one only once per every:
// a pool of connections refused for the same reason gives one line, and
// then one with the count of those left unsaid.
type dedup struct {
	w     io.Writer
	every time.Duration

	mu     sync.Mutex
	last   string
	at     time.Time
	unsaid int
}

func (d *dedup) say(line string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	if line == d.last && now.Sub(d.at) < d.every {
		d.unsaid++
		return
	}
	out := line
	if line == d.last && d.unsaid > 0 {
		out = fmt.Sprintf("%s (and %d more like it)", line, d.unsaid)
	}
	fmt.Fprintln(d.w, out)
	d.last, d.at, d.unsaid = line, now, 0
}

// retryIn says when the next attempt comes: "retrying in 1.2s".
func retryIn(d time.Duration) string {
	if d <= 0 {
		return "retrying at once"
	}
	return "retrying in " + roundDelay(d).String()
}

// roundDelay rounds a delay to what a person reads: tenths of a second
// under 10 s, whole seconds above.
func roundDelay(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return max(d.Round(100*time.Millisecond), 100*time.Millisecond)
	}
	return d.Round(time.Second)
}
