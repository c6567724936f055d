package client

import (
	"encoding/binary"
	"sync"

	"github.com/ferrygw/ferry/tunnel"
)

// link is one tunnel: a yamux session over the byte stream nc. A Session
// has one current link, on which Dial opens streams, and, while a gateway
// drains, older links that carry only the streams opened before.
//
// A link counts its users: Dials opening a stream on it and the Conns
// they return, until each ends. Once the gateway has sent a GoAway and the
// count is 0, idle is closed and the link is ended with 1000.
type link struct {
	mux *muxSession
	nc  TunnelConn // the byte stream as dialed (Err, CloseTunnel)

	fins   finSet        // streams whose FIN the gateway sent
	goAway chan struct{} // closed when the gateway sent a GoAway
	idle   chan struct{} // closed when goAway is and no user is left

	mu       sync.Mutex
	users    int
	draining bool // goAway is closed
	idleDone bool // idle is closed
	opened   bool // a stream was opened on the link
	eager    bool // the link was dialed at once, without a backoff wait

	maxStreams int // the gateway's streams per session (Ferry-Limits), 0 if unknown
	cap        int // streams tryAcquire allows: maxStreams, or fewer after a status 5; 0 is no bound

	idleTick chan struct{} // signalled when users drops to 0 (pool.go)
}

func newLink(nc TunnelConn) *link {
	return &link{nc: nc, goAway: make(chan struct{}), idle: make(chan struct{}), idleTick: make(chan struct{}, 1)}
}

// tryAcquire counts a new user, unless the gateway is draining the link
// or its streams are at the cap.
func (l *link) tryAcquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.draining || l.cap > 0 && l.users >= l.cap {
		return false
	}
	l.users++
	return true
}

// markFull records that the gateway answered status 5 on the link: no
// more streams than now until one ends.
func (l *link) markFull() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cap = max(l.users, 1)
}

// count returns the link's users: streams open or being opened.
func (l *link) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.users
}

// idleNow reports whether the link has no user.
func (l *link) idleNow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.users == 0
}

// acquire counts a new user, unless the gateway is draining the link.
func (l *link) acquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.draining {
		return false
	}
	l.users++
	return true
}

// release ends a use that acquire counted.
func (l *link) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.users--
	if l.cap < l.maxStreams || l.maxStreams == 0 && l.cap > 0 {
		// A stream ended: the gateway has room again, up to its limit.
		l.cap = l.maxStreams
	}
	if l.users == 0 {
		select {
		case l.idleTick <- struct{}{}:
		default:
		}
	}
	l.checkIdle()
}

// noteOpened records that a stream was opened on the link.
func (l *link) noteOpened() {
	l.mu.Lock()
	l.opened = true
	l.mu.Unlock()
}

// markGoAway records that the gateway sent a GoAway: no stream may be
// opened on the link any more. Safe to call more than once.
func (l *link) markGoAway() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.draining {
		return
	}
	l.draining = true
	close(l.goAway)
	l.checkIdle()
}

func (l *link) checkIdle() {
	if l.draining && l.users == 0 && !l.idleDone {
		l.idleDone = true
		close(l.idle)
	}
}

// goingAway reports whether the gateway sent a GoAway.
func (l *link) goingAway() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.draining
}

// wasUsed reports whether a stream was opened on the link.
func (l *link) wasUsed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.opened
}

// usable reports whether new streams may be opened on the link.
func (l *link) usable() bool {
	return !l.mux.IsClosed() && !l.goingAway()
}

// streamResetter is a tunnel byte stream that can reset one yamux stream
// on both sides (tunnel.MuxConn, what the native dialer returns).
type streamResetter interface {
	ResetStream(id uint32) error
}

// resetter returns a function that resets st on both sides: by the
// stream's own Reset (tunnel/ymux, the browser build's), else through
// the link's byte stream (resetVia), else nil.
func (l *link) resetter(st *muxStream) func() {
	if r, ok := any(st).(interface{ Reset() error }); ok {
		return func() { _ = r.Reset() }
	}
	return resetVia(l.nc, st.StreamID())
}

// resetVia returns a function that resets stream id on both sides
// through nc, the byte stream its yamux session runs on (hashicorp/yamux
// has no reset; tunnel.MuxConn sends one for it), or nil when nc cannot
// (a custom Dialer's byte stream).
func resetVia(nc any, id uint32) func() {
	r, ok := nc.(streamResetter)
	if !ok {
		return nil
	}
	return func() { _ = r.ResetStream(id) }
}

// close ends the tunnel with a normal closure, then the yamux session.
func (l *link) close() {
	endTunnel(l.nc, uint16(tunnel.StatusNormalClosure), "")
	l.mux.Close()
}

// yamux frame layout (yamux spec.md): version, type, flags (2), stream
// ID (4), length (4); only data frames have a body, of length bytes.
const (
	muxHeaderSize = 12
	muxTypeData   = 0
	muxTypeGoAway = 3
	// muxTypeWindowUpdate frames, like data frames, may carry a FIN.
	muxTypeWindowUpdate = 1
	muxFlagFIN          = 0x4
	goAwayNormal        = 0 // the length of a GoAway frame is its reason
)

// finSet holds the streams whose FIN the gateway sent, as the frames go
// past: a stream whose end of file yamux reports after the tunnel closed
// ended normally if its FIN came first (the gateway closes a drained
// tunnel right after its last stream's FIN, which a slow reader reads
// after the close), and was cut off otherwise.
type finSet struct {
	mu  sync.Mutex
	ids map[uint32]struct{}
}

func (f *finSet) add(id uint32) {
	f.mu.Lock()
	if f.ids == nil {
		f.ids = map[uint32]struct{}{}
	}
	f.ids[id] = struct{}{}
	f.mu.Unlock()
}

func (f *finSet) seen(id uint32) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.ids[id]
	return ok
}

func (f *finSet) forget(id uint32) {
	f.mu.Lock()
	delete(f.ids, id)
	f.mu.Unlock()
}

// goAwayWatch is the byte stream handed to yamux: nc, whose reads it
// follows frame by frame to see the gateway's GoAway as yamux reads it.
// yamux v0.1.2 records a GoAway without telling anyone (OpenStream then
// fails with ErrRemoteGoAway); watching the frames lets the Session
// reconnect as soon as the gateway starts draining rather than at the
// next Dial. Read is called by yamux's receive loop only.
type goAwayWatch struct {
	TunnelConn
	onGoAway func()
	fins     *finSet

	hdr  [muxHeaderSize]byte
	hn   int   // bytes of the current frame's header seen
	body int64 // bytes of the current frame's body still to come
}

func (w *goAwayWatch) Read(p []byte) (int, error) {
	n, err := w.TunnelConn.Read(p)
	w.scan(p[:n])
	return n, err
}

// scan follows the frames in p, bytes just read.
func (w *goAwayWatch) scan(p []byte) {
	for len(p) > 0 {
		if w.body > 0 {
			k := min(int64(len(p)), w.body)
			w.body -= k
			p = p[k:]
			continue
		}
		k := copy(w.hdr[w.hn:], p)
		w.hn += k
		p = p[k:]
		if w.hn < muxHeaderSize {
			return
		}
		w.hn = 0
		length := binary.BigEndian.Uint32(w.hdr[8:12])
		if typ := w.hdr[1]; (typ == muxTypeData || typ == muxTypeWindowUpdate) && binary.BigEndian.Uint16(w.hdr[2:4])&muxFlagFIN != 0 && w.fins != nil {
			w.fins.add(binary.BigEndian.Uint32(w.hdr[4:8]))
		}
		switch w.hdr[1] {
		case muxTypeData:
			w.body = int64(length)
		case muxTypeGoAway:
			// Other reasons (protocol or internal error) end the
			// session; yamux closes it on its own.
			if length == goAwayNormal {
				w.onGoAway()
			}
		}
	}
}
