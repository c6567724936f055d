package ymux

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"testing"
)

// peerBytes is a byte stream whose reads are what a peer sent (then end
// of file) and whose writes are dropped.
type peerBytes struct {
	r      *bytes.Reader
	mu     sync.Mutex
	closed bool
}

func (p *peerBytes) Read(b []byte) (int, error) { return p.r.Read(b) }
func (p *peerBytes) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, io.ErrClosedPipe
	}
	return len(b), nil
}
func (p *peerBytes) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	return nil
}

func seedFrame(typ byte, flags uint16, id, length uint32, body string) []byte {
	b := make([]byte, headerSize, headerSize+len(body))
	b[1] = typ
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint32(b[4:], id)
	binary.BigEndian.PutUint32(b[8:], length)
	return append(b, body...)
}

// FuzzSession feeds a session, with stream 1 open and read, whatever the
// peer might send: it must end without a panic or a hang when the bytes
// end, with the stream's buffer never past its window, and with every
// error it ends with either a protocol error or the end of the bytes.
func FuzzSession(f *testing.F) {
	f.Add(seedFrame(typeWindowUpdate, flagACK, 1, 0, ""))
	f.Add(append(seedFrame(typeData, 0, 1, 5, "hello"), seedFrame(typeData, flagFIN, 1, 0, "")...))
	f.Add(seedFrame(typePing, flagSYN, 0, 7, ""))
	f.Add(seedFrame(typeGoAway, 0, 0, goAwayNormal, ""))
	f.Add(seedFrame(typeWindowUpdate, flagSYN, 2, 0, ""))
	f.Add(seedFrame(typeData, flagRST, 1, 0, ""))
	f.Add(seedFrame(typeData, 0, 1, 300000, "short"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, _ := Client(&peerBytes{r: bytes.NewReader(in)}, initialWindow)
		st, err := s.OpenStream()
		if err != nil {
			<-s.CloseChan()
			return
		}
		read := make(chan struct{})
		go func() {
			defer close(read)
			_, _ = io.Copy(io.Discard, st)
		}()
		<-s.CloseChan()
		<-read
		st.mu.Lock()
		if len(st.buf)-st.r > initialWindow || st.recvWindow > initialWindow {
			t.Errorf("buffered %d, window left %d", len(st.buf)-st.r, st.recvWindow)
		}
		st.mu.Unlock()
		if err := s.Err(); !errors.Is(err, ErrProtocol) && err != io.EOF && err != io.ErrUnexpectedEOF {
			t.Errorf("session ended with %v", err)
		}
	})
}

func TestParseHeader(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want header
		ok   bool
	}{
		{seedFrame(typeData, flagSYN|flagFIN, 5, 9, ""), header{typeData, flagSYN | flagFIN, 5, 9}, true},
		{seedFrame(typePing, flagACK, 0, 0xfeedface, ""), header{typePing, flagACK, 0, 0xfeedface}, true},
		{seedFrame(typeGoAway, 0, 0, goAwayProtocol, ""), header{typeGoAway, 0, 0, goAwayProtocol}, true},
		{seedFrame(typeGoAway, 0, 3, 0, ""), header{}, false},
		{seedFrame(typeWindowUpdate, 0, 0, 0, ""), header{}, false},
		{seedFrame(9, 0, 1, 0, ""), header{}, false},
		{append([]byte{2}, seedFrame(typeData, 0, 1, 0, "")[1:]...), header{}, false},
	} {
		h, err := parseHeader(tc.in)
		if tc.ok != (err == nil) || tc.ok && h != tc.want {
			t.Errorf("parseHeader(% x) = %+v, %v", tc.in, h, err)
		}
		if tc.ok {
			var b [headerSize]byte
			h.put(b[:])
			if !bytes.Equal(b[:], tc.in) {
				t.Errorf("put(%+v) = % x, want % x", h, b, tc.in)
			}
		}
	}
}
