package ymux

import (
	"bufio"
	"io"
	"strconv"
	"sync"
	"time"
)

// maxPayload is the most one data frame carries: the browser sends each
// frame as one WebSocket message.
const maxPayload = 64 << 10

// Stream is one stream of a Session. Close is a half-close: it sends FIN
// and reading goes on until the peer's FIN.
type Stream struct {
	sess *Session
	id   uint32

	wmu sync.Mutex // held by Write, so that writes do not interleave

	mu sync.Mutex
	// buf[r:] holds what was received and not read. Only the receive
	// loop moves or grows buf, and it fills buf[len(buf):] without mu
	// while a frame's body arrives.
	buf        []byte
	r          int
	recvWindow uint32 // what the peer may still send
	sendWindow uint32 // what this side may still send
	finRecv    bool
	finSent    bool
	reset      bool
	readDL     time.Time
	writeDL    time.Time

	readable chan struct{} // a signal: data, FIN, RST or a new deadline
	writable chan struct{} // a signal: window, RST or a new deadline
}

func newStream(s *Session, id uint32) *Stream {
	return &Stream{
		sess:       s,
		id:         id,
		recvWindow: s.window,
		sendWindow: initialWindow,
		readable:   make(chan struct{}, 1),
		writable:   make(chan struct{}, 1),
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// StreamID returns the stream's ID.
func (st *Stream) StreamID() uint32 { return st.id }

// Session returns the stream's session.
func (st *Stream) Session() *Session { return st.sess }

// Read reads what the peer sent. It returns io.EOF after the peer's FIN,
// ErrConnectionReset after its RST, io.EOF too once the session ended (as
// hashicorp/yamux does), and ErrTimeout past the read deadline.
func (st *Stream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		st.mu.Lock()
		if st.r < len(st.buf) {
			n := copy(p, st.buf[st.r:])
			st.r += n
			// Grant again what was read once it is half the window, as
			// hashicorp/yamux does: fewer updates, and a steady flow.
			delta := st.sess.window - uint32(len(st.buf)-st.r) - st.recvWindow
			if delta < st.sess.window/2 {
				st.mu.Unlock()
				return n, nil
			}
			st.recvWindow += delta
			st.mu.Unlock()
			// A failure ends the session; what was read stands.
			_ = st.sess.writeFrame(header{typ: typeWindowUpdate, stream: st.id, length: delta}, nil)
			return n, nil
		}
		switch {
		case st.reset:
			st.mu.Unlock()
			return 0, ErrConnectionReset
		case st.finRecv, st.sess.IsClosed():
			st.mu.Unlock()
			return 0, io.EOF
		case !st.readDL.IsZero() && !time.Now().Before(st.readDL):
			st.mu.Unlock()
			return 0, ErrTimeout
		}
		dl := st.readDL
		st.mu.Unlock()
		st.wait(st.readable, dl)
	}
}

// Write writes p, waiting for the peer's window as needed. It fails with
// ErrStreamClosed after Close, ErrConnectionReset after the peer's RST,
// ErrSessionShutdown once the session ended, and ErrTimeout past the
// write deadline while it waits for window.
func (st *Stream) Write(p []byte) (int, error) {
	st.wmu.Lock()
	defer st.wmu.Unlock()
	total := 0
	for total < len(p) {
		st.mu.Lock()
		switch {
		case st.reset:
			st.mu.Unlock()
			return total, ErrConnectionReset
		case st.finSent:
			st.mu.Unlock()
			return total, ErrStreamClosed
		case st.sess.IsClosed():
			st.mu.Unlock()
			return total, ErrSessionShutdown
		case st.sendWindow == 0:
			dl := st.writeDL
			if !dl.IsZero() && !time.Now().Before(dl) {
				st.mu.Unlock()
				return total, ErrTimeout
			}
			st.mu.Unlock()
			st.wait(st.writable, dl)
			continue
		}
		n := min(len(p)-total, int(st.sendWindow), maxPayload)
		st.sendWindow -= uint32(n)
		st.mu.Unlock()
		if err := st.sess.writeFrame(header{typ: typeData, stream: st.id, length: uint32(n)}, p[total:total+n]); err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// Close half-closes the stream: it sends FIN. Reading goes on until the
// peer's FIN.
func (st *Stream) Close() error {
	st.mu.Lock()
	if st.finSent || st.reset {
		st.mu.Unlock()
		return nil
	}
	st.finSent = true
	done := st.finRecv
	st.mu.Unlock()
	signal(st.writable)
	err := st.sess.writeFrame(header{typ: typeWindowUpdate, flags: flagFIN, stream: st.id}, nil)
	if done {
		st.sess.remove(st.id)
	}
	return err
}

// Reset ends the stream at once, both ways: it sends RST and forgets the
// stream, dropping what was received and not read; Read and Write then
// fail with ErrConnectionReset. The peer's side fails the same way (and a
// gateway resets the backend connection). A stream already ended both
// ways is left alone.
func (st *Stream) Reset() error {
	st.mu.Lock()
	if st.reset || st.finSent && st.finRecv {
		st.mu.Unlock()
		return nil
	}
	st.reset = true
	st.buf, st.r = nil, 0
	st.mu.Unlock()
	st.sess.remove(st.id)
	signal(st.readable)
	signal(st.writable)
	return st.sess.writeFrame(header{typ: typeWindowUpdate, flags: flagRST, stream: st.id}, nil)
}

// SetDeadline sets both deadlines.
func (st *Stream) SetDeadline(t time.Time) error {
	_ = st.SetReadDeadline(t)
	return st.SetWriteDeadline(t)
}

// SetReadDeadline sets the time after which a waiting Read fails with
// ErrTimeout; zero means never.
func (st *Stream) SetReadDeadline(t time.Time) error {
	st.mu.Lock()
	st.readDL = t
	st.mu.Unlock()
	signal(st.readable)
	return nil
}

// SetWriteDeadline sets the time after which a Write waiting for window
// fails with ErrTimeout; zero means never.
func (st *Stream) SetWriteDeadline(t time.Time) error {
	st.mu.Lock()
	st.writeDL = t
	st.mu.Unlock()
	signal(st.writable)
	return nil
}

// wait waits for a signal on ch, the deadline dl (if set), or the end of
// the session.
func (st *Stream) wait(ch chan struct{}, dl time.Time) {
	var expired <-chan time.Time
	if !dl.IsZero() {
		t := time.NewTimer(time.Until(dl))
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-ch:
	case <-expired:
	case <-st.sess.done:
	}
}

// receive reads a data frame's body of n bytes from br into the stream.
// It is called by the receive loop only.
func (st *Stream) receive(br *bufio.Reader, n uint32) error {
	if n == 0 {
		return nil
	}
	st.mu.Lock()
	if n > st.recvWindow {
		w := st.recvWindow
		st.mu.Unlock()
		return &protocolError{"stream " + strconv.FormatUint(uint64(st.id), 10) + " sent " + strconv.FormatUint(uint64(n), 10) + " bytes past a window of " + strconv.FormatUint(uint64(w), 10)}
	}
	if st.finRecv || st.reset {
		// Bytes after the peer's own FIN: dropped, not read.
		st.mu.Unlock()
		_, err := br.Discard(int(n))
		return err
	}
	// Make room at the end of buf: forget what was read, move what was
	// not to the front, grow if need be (never past the window).
	if st.r == len(st.buf) {
		st.buf, st.r = st.buf[:0], 0
	}
	if cap(st.buf)-len(st.buf) < int(n) {
		left := len(st.buf) - st.r
		if st.r > 0 && cap(st.buf)-left >= int(n) {
			copy(st.buf, st.buf[st.r:])
			st.buf, st.r = st.buf[:left], 0
		} else {
			grown := make([]byte, left, min(max(2*cap(st.buf), left+int(n)), int(st.sess.window)))
			copy(grown, st.buf[st.r:])
			st.buf, st.r = grown, 0
		}
	}
	tail := st.buf[len(st.buf) : len(st.buf)+int(n)]
	st.mu.Unlock()
	if _, err := io.ReadFull(br, tail); err != nil {
		return err
	}
	st.mu.Lock()
	if st.reset {
		// Reset ran while the body arrived, and dropped buf: so are these
		// bytes.
		st.mu.Unlock()
		return nil
	}
	st.buf = st.buf[:len(st.buf)+int(n)]
	st.recvWindow -= n
	st.mu.Unlock()
	signal(st.readable)
	return nil
}

// grant adds a window update's delta to what this side may send.
func (st *Stream) grant(delta uint32) {
	if delta == 0 {
		return
	}
	st.mu.Lock()
	st.sendWindow = uint32(min(uint64(st.sendWindow)+uint64(delta), 1<<32-1))
	st.mu.Unlock()
	signal(st.writable)
}

// flags applies a frame's FIN and RST (an ACK needs nothing: data may
// flow from the SYN on).
func (st *Stream) flags(f uint16) {
	if f&(flagFIN|flagRST) == 0 {
		return
	}
	st.mu.Lock()
	if f&flagRST != 0 {
		st.reset = true
	} else {
		st.finRecv = true
	}
	gone := st.reset || st.finSent
	st.mu.Unlock()
	if gone {
		// Forgotten before the stream's readers wake, so that a reader
		// that saw the end sees the stream gone from NumStreams too.
		st.sess.remove(st.id)
	}
	signal(st.readable)
	signal(st.writable)
}
