package ymux

import (
	"bufio"
	"io"
	"math"
	"strconv"
	"sync"
	"time"
)

// maxControlQueue bounds the control frames (ping answers, resets of
// streams the peer opened) that the receive loop has queued and the
// control writer not yet sent; a peer that floods them past this while
// not reading what this side sends ends the session.
const maxControlQueue = 64

// Session is the client side of a yamux session over one byte stream.
type Session struct {
	conn   io.ReadWriteCloser
	br     *bufio.Reader
	window uint32 // the receive window each stream grants

	wmu sync.Mutex // held while one frame is written to conn

	mu      sync.Mutex
	streams map[uint32]*Stream // open streams, by ID
	nextID  uint32             // the ID of the next stream to open (odd)
	goAway  bool               // the peer sent GoAway
	closed  bool
	err     error                    // why the session ended
	pings   map[uint32]chan struct{} // pings sent and not answered, by value
	pingID  uint32

	done chan struct{}         // closed when the session ends
	ctrl chan [headerSize]byte // control frames for ctrlLoop to send
}

// Client starts the client side of a yamux session on conn, granting each
// stream a receive window of window bytes (at least the 256 KiB every
// stream starts with; more is granted with the SYN). conn is closed when
// the session ends.
func Client(conn io.ReadWriteCloser, window uint32) (*Session, error) {
	s := &Session{
		conn:    conn,
		br:      bufio.NewReaderSize(conn, 4096),
		window:  max(window, initialWindow),
		streams: make(map[uint32]*Stream),
		nextID:  1,
		pings:   make(map[uint32]chan struct{}),
		done:    make(chan struct{}),
		ctrl:    make(chan [headerSize]byte, maxControlQueue),
	}
	go s.recvLoop()
	go s.ctrlLoop()
	return s, nil
}

// OpenStream opens a stream. It fails with ErrRemoteGoAway once the peer
// sent GoAway, and with ErrSessionShutdown once the session ended.
func (s *Session) OpenStream() (*Stream, error) {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return nil, ErrSessionShutdown
	case s.goAway:
		s.mu.Unlock()
		return nil, ErrRemoteGoAway
	case s.nextID >= math.MaxUint32-1:
		s.mu.Unlock()
		return nil, ErrStreamsExhausted
	}
	st := newStream(s, s.nextID)
	s.nextID += 2
	s.streams[st.id] = st
	s.mu.Unlock()
	if err := s.writeFrame(header{typ: typeWindowUpdate, flags: flagSYN, stream: st.id, length: s.window - initialWindow}, nil); err != nil {
		s.remove(st.id)
		return nil, err
	}
	return st, nil
}

// Ping sends a ping and returns the time its answer took. It waits for
// the answer until the session ends.
func (s *Session) Ping() (time.Duration, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, ErrSessionShutdown
	}
	id := s.pingID
	s.pingID++
	answered := make(chan struct{})
	s.pings[id] = answered
	s.mu.Unlock()
	start := time.Now()
	if err := s.writeFrame(header{typ: typePing, flags: flagSYN, length: id}, nil); err != nil {
		return 0, err
	}
	select {
	case <-answered:
		return time.Since(start), nil
	case <-s.done:
		return 0, ErrSessionShutdown
	}
}

// NumStreams returns the number of open streams.
func (s *Session) NumStreams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.streams)
}

// IsClosed reports whether the session has ended.
func (s *Session) IsClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// CloseChan is closed when the session ends.
func (s *Session) CloseChan() <-chan struct{} { return s.done }

// Close ends the session and closes its byte stream. Reads of its streams
// then return end of file, and writes ErrSessionShutdown.
func (s *Session) Close() error {
	s.shutdown(ErrSessionShutdown)
	return nil
}

// Err returns why the session ended, or nil while it runs.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// shutdown ends the session with err, once.
func (s *Session) shutdown(err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.err = err
	s.streams = make(map[uint32]*Stream)
	s.mu.Unlock()
	close(s.done)
	_ = s.conn.Close()
}

// remove forgets stream id.
func (s *Session) remove(id uint32) {
	s.mu.Lock()
	delete(s.streams, id)
	s.mu.Unlock()
}

// writeFrame writes h and then body (h.length bytes for data) as one
// frame; frames of concurrent callers do not interleave. A failed write
// ends the session.
func (s *Session) writeFrame(h header, body []byte) error {
	var b [headerSize]byte
	h.put(b[:])
	return s.write(b[:], body)
}

// write writes a frame's encoded header and its body, under wmu.
func (s *Session) write(hdr, body []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.IsClosed() {
		return ErrSessionShutdown
	}
	_, err := s.conn.Write(hdr)
	if err == nil && len(body) > 0 {
		_, err = s.conn.Write(body)
	}
	if err != nil {
		s.shutdown(err)
		return err
	}
	return nil
}

// sendControl queues a frame without a body for ctrlLoop, so that the
// receive loop never waits on a write.
func (s *Session) sendControl(h header) {
	var b [headerSize]byte
	h.put(b[:])
	select {
	case s.ctrl <- b:
	default:
		s.shutdown(&protocolError{"more than " + strconv.Itoa(maxControlQueue) + " pings or streams to answer while this side cannot write"})
	}
}

// ctrlLoop writes the frames sendControl queued.
func (s *Session) ctrlLoop() {
	for {
		select {
		case b := <-s.ctrl:
			if s.write(b[:], nil) != nil {
				return
			}
		case <-s.done:
			return
		}
	}
}

// recvLoop reads frames until the byte stream ends or breaks the protocol.
func (s *Session) recvLoop() {
	var b [headerSize]byte
	for {
		if _, err := io.ReadFull(s.br, b[:]); err != nil {
			s.shutdown(err)
			return
		}
		h, err := parseHeader(b[:])
		if err == nil {
			switch h.typ {
			case typeData, typeWindowUpdate:
				err = s.handleStream(h)
			case typePing:
				s.handlePing(h)
			case typeGoAway:
				s.mu.Lock()
				s.goAway = true
				s.mu.Unlock()
			}
		}
		if err != nil {
			s.shutdown(err)
			return
		}
	}
}

// handlePing answers a ping, or wakes the Ping an answer is for (answers
// to pings this side did not send, such as the browser's keepalive, are
// ignored).
func (s *Session) handlePing(h header) {
	if h.flags&flagSYN != 0 {
		s.sendControl(header{typ: typePing, flags: flagACK, length: h.length})
		return
	}
	s.mu.Lock()
	if ch, ok := s.pings[h.length]; ok {
		delete(s.pings, h.length)
		close(ch)
	}
	s.mu.Unlock()
}

// handleStream handles a data or window update frame: its body, then its
// flags.
func (s *Session) handleStream(h header) error {
	s.mu.Lock()
	st := s.streams[h.stream]
	s.mu.Unlock()
	if st == nil {
		if h.flags&flagSYN != 0 && h.flags&flagRST == 0 {
			// The client takes no streams: refuse it.
			s.sendControl(header{typ: typeWindowUpdate, flags: flagRST, stream: h.stream})
		}
		if h.typ == typeData && h.length > 0 {
			// A stream that ended here, or one refused: drop its bytes.
			if _, err := s.br.Discard(int(h.length)); err != nil {
				return err
			}
		}
		return nil
	}
	if h.typ == typeData {
		if err := st.receive(s.br, h.length); err != nil {
			return err
		}
	} else {
		st.grant(h.length)
	}
	st.flags(h.flags)
	return nil
}
