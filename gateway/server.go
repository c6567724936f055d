package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/gateway/config"
)

// Options are the parts of a gateway that are not configuration.
type Options struct {
	// Log receives the access lines (one per session, stream, refusal and
	// backend dial failure) and the gateway's events; nil discards. No
	// line holds a token, a JWT or a secret.
	Log *slog.Logger
	// Level, when set, is the level Log's handler filters at: a reload
	// sets it to the new [log] level.
	Level *slog.LevelVar
	// Resolver looks up backend host names (default net.DefaultResolver).
	// Every address it returns is checked against [network] deny before
	// it is dialed.
	Resolver interface {
		LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	}
	// Dial connects to a checked backend address (default a net.Dialer).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Now is the clock for token expiry and rate limits (default time.Now).
	Now func() time.Time
}

// Server is a gateway. Create it with New, serve with Serve or Handler,
// change its config with Reload and stop it with Shutdown.
type Server struct {
	state    atomic.Pointer[state] // the config of the moment; see Reload
	reloadMu sync.Mutex            // one reload at a time
	log      *slog.Logger
	level    *slog.LevelVar
	metrics  *metrics
	budget   budget // buffer space reserved by sessions and streams
	// reapTimeout is how long a stream this side closed may take to be
	// closed by the client before it is reset (defaultReapTimeout).
	reapTimeout time.Duration
	// afterAccept, set by tests only, runs between yamux's AcceptStream
	// and the session counting the stream.
	afterAccept func()
	resolver    interface {
		LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	}
	dial  func(ctx context.Context, network, addr string) (net.Conn, error)
	now   func() time.Time
	count counters
	sdk   atomic.Pointer[liveSDK]
	// exposers holds the registrations of exposed services.
	exposers exposerTable
	http     *http.Server
	// wireIn and wireOut add up the wire bytes of ended sessions; the
	// metric adds the open ones' at scrape time.
	wireIn, wireOut atomic.Int64

	mu        sync.Mutex
	sessions  map[*session]struct{}
	live      map[*liveStream]struct{} // streams connected to a backend
	perIP     map[string]int
	perToken  map[string]int
	admitted  int // sessions admitted, those still in their handshake included
	draining  bool
	drained   chan struct{}  // closed when draining and the last session has ended
	drainDone bool           // drained is closed
	sessWG    sync.WaitGroup // every session goroutine
	pending   chan struct{}  // handshakes in progress (a semaphore)
	closers   chan struct{}  // refused browser WebSockets being closed (a semaphore)
}

// New returns a gateway for cfg, which must be valid (config.Parse checks).
func New(cfg *config.Config, opts *Options) (*Server, error) {
	if cfg == nil {
		return nil, errors.New("gateway: no config")
	}
	if opts == nil {
		opts = &Options{}
	}
	s := &Server{
		log:      opts.Log,
		level:    opts.Level,
		sessions: map[*session]struct{}{},
		live:     map[*liveStream]struct{}{},
		perIP:    map[string]int{},
		perToken: map[string]int{},
		drained:  make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.level == nil {
		s.level = new(slog.LevelVar)
	}
	n := cfg.Limits.MaxPendingHandshakes
	if n <= 0 {
		n = 1000
	}
	s.pending = make(chan struct{}, n)
	s.closers = make(chan struct{}, 64)
	s.now = opts.Now
	if s.now == nil {
		s.now = time.Now
	}
	s.resolver = opts.Resolver
	if s.resolver == nil {
		s.resolver = net.DefaultResolver
	}
	s.dial = opts.Dial
	if s.dial == nil {
		d := &net.Dialer{KeepAlive: 30 * time.Second}
		s.dial = d.DialContext
	}
	s.budget.limit.Store(int64(cfg.Limits.BufferBudget))
	s.reapTimeout = defaultReapTimeout
	st, err := s.newState(cfg, nil)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s.state.Store(st)
	s.sdk.Store(st.sdk)
	s.metrics = newMetrics(s)
	return s, nil
}

// Handler returns the gateway's HTTP routes: the tunnel path, /healthz and
// the demo page at /.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(s.config().Server.TunnelPath, s.serveTunnel)
	mux.HandleFunc("/healthz", serveHealthz)
	mux.HandleFunc("/{$}", s.servePage)
	mux.HandleFunc(assetPrefix, s.serveAsset)
	return s.checkHost(mux)
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.draining { // Shutdown came first
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.config().Server.HandshakeTimeout.Duration,
		IdleTimeout:       httpIdleTimeout, // no WriteTimeout: see httpIdleTimeout
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	srv := s.http
	s.mu.Unlock()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown drains the gateway (docs/PROTOCOL.md §5): /readyz turns 503
// and new tunnel handshakes get 503 with a Retry-After at once, while the
// listener stays up; every session is sent a yamux GoAway at once, so its
// client opens new streams on a new tunnel (to this URL, which may lead
// to another gateway) while its open streams finish; sessions without
// open streams are closed with 1001 at once, the others as their last
// stream ends. When ctx ends (the caller sets it to drain_timeout), the
// sessions left are closed with 1001. Shutdown returns once every
// session has ended and the listener is closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	already := s.draining
	s.draining = true
	srv := s.http
	sessions := make([]*session, 0, len(s.sessions))
	for se := range s.sessions {
		sessions = append(sessions, se)
	}
	if !already {
		s.checkDrainedLocked()
	}
	s.mu.Unlock()
	s.log.Info("draining", "sessions", len(sessions), "drain_timeout", s.config().Server.DrainTimeout.String())
	// Exposers are told to register elsewhere: their registration
	// streams end, so their sessions go as their last stream does.
	s.withdrawExposers(nil)
	for _, se := range sessions {
		se.drain()
	}
	select {
	case <-s.drained:
	case <-ctx.Done():
		s.mu.Lock()
		sessions = sessions[:0]
		for se := range s.sessions {
			sessions = append(sessions, se)
		}
		s.mu.Unlock()
		s.log.Warn("drain timeout: closing the sessions left", "sessions", len(sessions))
		// Every tunnel at once: a silent peer costs each close up to its
		// timeout, which must not add up.
		for _, se := range sessions {
			go se.goAway()
		}
	}
	s.sessWG.Wait()
	var err error
	if srv != nil {
		err = srv.Close() // the listener, and what is left of HTTP
	}
	if err != nil {
		return fmt.Errorf("gateway: shutdown: %w", err)
	}
	return nil
}

// checkDrainedLocked closes s.drained once draining has begun and the
// last session has ended. s.mu is held.
func (s *Server) checkDrainedLocked() {
	if s.draining && len(s.sessions) == 0 && !s.drainDone {
		s.drainDone = true
		close(s.drained)
	}
}

// isDraining reports whether Shutdown has begun.
func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// Sessions returns the number of open tunnels.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// DrainTimeout is the [server] drain_timeout of the moment.
func (s *Server) DrainTimeout() time.Duration { return s.config().Server.DrainTimeout.Duration }
