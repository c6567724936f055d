package client

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultTimeout bounds each phase of connecting when Options.Timeout is 0.
const DefaultTimeout = 15 * time.Second

// TimeoutError is a connection attempt that took longer than
// Options.Timeout in one phase: "TCP connect", "proxy CONNECT", "TLS",
// "HTTP upgrade" (the native dialer's steps), "dial" (a custom Dialer as a
// whole) or "first yamux round trip" (the gateway answered the upgrade but
// not a yamux ping on the new tunnel).
type TimeoutError struct {
	Phase string
	After time.Duration // Options.Timeout
}

func (e *TimeoutError) Error() string {
	return "client: " + e.Phase + " timed out after " + e.After.String()
}

// Timeout reports true: a TimeoutError is a timeout (net.Error's sense).
func (e *TimeoutError) Timeout() bool { return true }

// phaseTimer bounds each phase of a connection attempt: begin starts a
// phase, and the one that outlives the timeout cancels ctx and is
// remembered for timedOut.
type phaseTimer struct {
	ctx     context.Context
	cancel  context.CancelFunc
	timeout time.Duration

	mu    sync.Mutex
	t     *time.Timer
	phase string
	fired string // the phase that timed out
}

func newPhaseTimer(parent context.Context, timeout time.Duration) *phaseTimer {
	ctx, cancel := context.WithCancel(parent)
	return &phaseTimer{ctx: ctx, cancel: cancel, timeout: timeout}
}

// begin ends the phase under way, if any, and starts the named one.
func (p *phaseTimer) begin(phase string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.t != nil {
		p.t.Stop()
	}
	p.phase = phase
	p.t = time.AfterFunc(p.timeout, func() {
		p.mu.Lock()
		if p.phase == phase && p.fired == "" {
			p.fired = phase
		}
		p.mu.Unlock()
		p.cancel()
	})
}

// stop ends the last phase; ctx is cancelled.
func (p *phaseTimer) stop() {
	p.mu.Lock()
	if p.t != nil {
		p.t.Stop()
	}
	p.phase = ""
	p.mu.Unlock()
	p.cancel()
}

// timedOut returns the TimeoutError of the phase that timed out, or nil
// when none did.
func (p *phaseTimer) timedOut() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fired == "" {
		return nil
	}
	return &TimeoutError{Phase: p.fired, After: p.timeout}
}

// LimitsHeader is the header of the gateway's 101 response that tells a
// client its limits, as comma-separated name=value pairs:
// "Ferry-Limits: streams=256" (docs/PROTOCOL.md).
const LimitsHeader = "Ferry-Limits"

// parseLimits returns the streams count of a Ferry-Limits value, or 0.
// Unknown names are skipped, for limits a later gateway may add.
func parseLimits(v string) (streams int) {
	for _, kv := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if k == "streams" {
			if n, err := strconv.Atoi(strings.TrimSpace(val)); err == nil && n > 0 {
				streams = n
			}
		}
	}
	return streams
}

// errText is err's message, and "<nil>" for nil, as fmt's %v writes it.
func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
