package config

import "fmt"

// The buffer budget. The memory a session can make the gateway hold is
// bounded by construction, and these are the bounds that [limits]
// buffer_budget is charged with: a session reserves SessionFixed when it
// is accepted, each stream StreamCost from the moment it is opened (yamux
// grants a stream its window before the gateway has read its open
// request) until it is gone on both sides, refused streams included, and
// each bulk copy buffer its size while a stream holds it. What does not
// fit is refused: a handshake with 503 (4429 for a page), a stream with
// open status 9 (busy). So the sessions never hold more than the budget,
// and one session never more than SessionWorst.
const (
	// RefusedStreams is how many refused streams a session may hold
	// before the client has closed them (or the gateway's reaper has
	// reset them). A client that closes refused streams at once holds
	// each for a round trip, so this is how many of its opens may be
	// answered with a refusal at the same time; the gateway resets any
	// stream past it at once, without an answer, which frees what it
	// holds.
	RefusedStreams = 8
	// BusyStreams is how many streams of a session may be refused as busy
	// (the budget could not take their StreamCost) at once. Their cost is
	// reserved with the session, since they hold buffer space like any
	// refused stream; past it, streams are reset at once.
	BusyStreams = 2
	// LargeCopies is how many bulk copy buffers (LargeCopy bytes each)
	// the streams of one session may hold at once; the others copy
	// through their small buffers. Sixteen lets eight streams move bulk
	// both ways at once (a pipe's copies, to a backend or to an exposer,
	// take the dialing session's): with four,
	// half of eight uploads copied through 8 KiB and the gateway made
	// five times the writes per MB (scripts/bench-tunnel -tests up8). It
	// costs a session's worst case 4 MiB, about 6%.
	LargeCopies = 16
	// LargeCopy is the size of one bulk copy buffer (tunnel.Pipe).
	LargeCopy = 256 << 10
	// streamExtra is what a stream holds besides its window: the two 8
	// KiB copy buffers, the goroutines of both directions, yamux's state.
	streamExtra = 32 << 10
	// sessionExtra is what a session holds besides a compressed message
	// being read, its streams and its bulk copy buffers: the WebSocket's
	// buffers, yamux's, the deflate state, the goroutines.
	sessionExtra = 512 << 10
)

// StreamCost is what one stream can make the gateway hold: its receive
// window three times over, and what every stream has. yamux keeps what it
// has received in a bytes.Buffer, which grows by doubling: its capacity
// can reach twice the window, and the buffers it outgrew are garbage
// until the next collection. Three windows is what a never-reading
// client's streams were measured to cost in the gateway's RSS, garbage
// included (about 2.5, tests/budget_test.go), with a margin.
func (l *Limits) StreamCost() int64 { return 3*int64(l.StreamWindow) + streamExtra }

// SessionFixed is what a session reserves when it is accepted: its busy
// streams, with compression a compressed message being gathered (its
// buffer can reach twice max_message_size as it grows), and what every
// session has.
func (c *Config) SessionFixed() int64 {
	n := int64(sessionExtra) + BusyStreams*c.Limits.StreamCost()
	if c.Compression.Enabled {
		n += 2 * int64(c.Limits.MaxMessageSize)
	}
	return n
}

// SessionWorst is the most one session can make the gateway hold: its
// fixed share, its streams and refused streams at their worst, and its
// bulk copy buffers.
func (c *Config) SessionWorst() int64 {
	l := &c.Limits
	return c.SessionFixed() + int64(l.MaxStreamsPerSession+RefusedStreams)*l.StreamCost() + LargeCopies*LargeCopy
}

// BudgetSummary says what one session and the whole gateway can hold at
// worst, for `ferry serve -check` and the log.
func (c *Config) BudgetSummary() string {
	l := &c.Limits
	return fmt.Sprintf("buffers: at most %s per session (%d streams and %d refused ones at %s each, %s fixed, %s of copy buffers); at most %s in all (buffer_budget): %d sessions at their worst, %d without streams",
		sizeOf(c.SessionWorst()), l.MaxStreamsPerSession, RefusedStreams, sizeOf(l.StreamCost()), sizeOf(c.SessionFixed()),
		sizeOf(LargeCopies*LargeCopy), l.BufferBudget, int64(l.BufferBudget)/c.SessionWorst(), int64(l.BufferBudget)/c.SessionFixed())
}

// sizeOf writes n in the largest unit that leaves at most one decimal.
func sizeOf(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}
