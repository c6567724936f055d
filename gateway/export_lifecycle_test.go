package gateway

import (
	"time"

	"github.com/ferrygw/ferry/gateway/config"
)

// RefusedStreams is refusedStreams, for the tests of package gateway_test.
const RefusedStreams = config.RefusedStreams

// SetReapTimeout sets how long the gateway waits for a client to close a
// stream the gateway has closed before it resets it.
func (s *Server) SetReapTimeout(d time.Duration) { s.reapTimeout = d }

// SetAfterAccept makes f run between yamux's AcceptStream and the count
// of the stream, in every session. Set it before serving.
func (s *Server) SetAfterAccept(f func()) { s.afterAccept = f }

// BufferReserved returns the buffer space the gateway has reserved now.
func (s *Server) BufferReserved() int64 { return s.budget.used.Load() }

// MuxStreams returns the streams yamux holds over every open session.
func (s *Server) MuxStreams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for se := range s.sessions {
		n += se.mux.NumStreams()
	}
	return n
}

// SessionStreams returns the streams the open sessions count against
// max_streams_per_session.
func (s *Server) SessionStreams() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for se := range s.sessions {
		se.idleMu.Lock()
		n += se.streams
		se.idleMu.Unlock()
	}
	return n
}
