package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
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
	// Log receives one line per notable event; nil discards.
	Log *log.Logger
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

// Server is a gateway. Create it with New, serve with Serve or Handler, and
// stop it with Shutdown.
type Server struct {
	cfg     *config.Config
	log     *log.Logger
	tokens  *tokenTable
	jwt     *jwtVerifier
	limiter *rateLimiter
	budget  budget // buffer space reserved by sessions and streams
	// reapTimeout is how long a stream this side closed may take to be
	// closed by the client before it is reset (defaultReapTimeout).
	reapTimeout time.Duration
	// afterAccept, set by tests only, runs between yamux's AcceptStream
	// and the session counting the stream.
	afterAccept func()
	resolver    interface {
		LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	}
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	now    func() time.Time
	count  counters
	anyPub bool // some service is public: handshakes without a credential are let in
	sdk    atomic.Pointer[liveSDK]
	http   *http.Server

	mu       sync.Mutex
	sessions map[*session]struct{}
	perIP    map[string]int
	perToken map[string]int
	admitted int // sessions admitted, those still in their handshake included
	draining bool
	streams  sync.WaitGroup // every open stream, for draining
	sessWG   sync.WaitGroup // every session goroutine
	pending  chan struct{}  // handshakes in progress (a semaphore)
	closers  chan struct{}  // refused browser WebSockets being closed (a semaphore)
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
		cfg:      cfg,
		log:      opts.Log,
		tokens:   newTokenTable(cfg.Tokens),
		sessions: map[*session]struct{}{},
		perIP:    map[string]int{},
		perToken: map[string]int{},
	}
	if s.log == nil {
		s.log = log.New(io.Discard, "", 0)
	}
	for _, svc := range cfg.Services {
		if svc.Public {
			s.anyPub = true
		}
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
	s.limiter = newRateLimiter(cfg.Limits.HandshakesPerSecondPerIP, s.now)
	s.budget.limit = int64(cfg.Limits.BufferBudget)
	s.reapTimeout = defaultReapTimeout
	v, err := newJWTVerifier(cfg.Auth, s.now)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s.jwt = v
	sdk, err := newLiveSDK(cfg)
	if err != nil {
		return nil, fmt.Errorf("gateway: the live SDK (/ferry/sdk.js): %w", err)
	}
	s.sdk.Store(sdk)
	return s, nil
}

func (s *Server) logf(format string, args ...any) { s.log.Printf(format, args...) }

// Handler returns the gateway's HTTP routes: the tunnel path, /healthz and
// the demo page at /.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(s.cfg.Server.TunnelPath, s.serveTunnel)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/{$}", s.servePage)
	mux.HandleFunc(assetPrefix, s.serveAsset)
	return s.checkHost(mux)
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.Server.HandshakeTimeout.Duration,
		IdleTimeout:       httpIdleTimeout, // no WriteTimeout: see httpIdleTimeout
		ErrorLog:          s.log,
	}
	srv := s.http
	s.mu.Unlock()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting tunnels and streams, lets open streams finish
// until ctx ends (the caller sets it to drain_timeout), then closes every
// tunnel with 1001 going away.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	srv := s.http
	s.mu.Unlock()
	var err error
	if srv != nil {
		err = srv.Shutdown(ctx) // closes listeners and idle HTTP connections
	}
	done := make(chan struct{})
	go func() {
		s.streams.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.logf("drain timeout: closing tunnels with open streams")
	}
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for se := range s.sessions {
		sessions = append(sessions, se)
	}
	s.mu.Unlock()
	// Every tunnel at once: a silent peer costs each close up to its
	// timeout, which must not add up.
	var wg sync.WaitGroup
	for _, se := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			se.goAway()
		}()
	}
	wg.Wait()
	s.sessWG.Wait()
	if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("gateway: shutdown: %w", err)
	}
	return nil
}

// Sessions returns the number of open tunnels.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}
