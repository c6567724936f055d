package gateway

import (
	"strconv"
	"sync/atomic"

	"github.com/ferrygw/ferry/tunnel"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the gateway's Prometheus metrics, on its own registry (a
// test runs many gateways in one process). Labels are bounded by the
// config: service names, named static tokens, fixed reasons and results;
// never a peer address.
type metrics struct {
	reg *prometheus.Registry

	streamsOpen    *prometheus.GaugeVec   // service
	exposers       *prometheus.GaugeVec   // service
	streamOpens    *prometheus.CounterVec // service, result
	streamEnds     *prometheus.CounterVec // service, how
	payload        *prometheus.CounterVec // service, direction
	dialSeconds    *prometheus.HistogramVec
	closes         *prometheus.CounterVec // side, code
	sessionSeconds prometheus.Histogram
	sessionsBy     *prometheus.CounterVec // token
	reloads        *prometheus.CounterVec // result
	reloadOK       prometheus.Gauge
	revoked        prometheus.Counter
}

// Directions of the byte counters: "in" is what clients send (toward
// backends), "out" what they are sent.
const (
	dirIn  = "in"
	dirOut = "out"
)

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.streamsOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ferry_streams_open", Help: "Streams connected to a backend now, by service.",
	}, []string{"service"})
	m.exposers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ferry_exposers", Help: "Clients exposing a service now (backend = \"expose\"), by service; its streams are in ferry_streams_open.",
	}, []string{"service"})
	m.streamOpens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_stream_opens_total",
		Help: "Stream open requests by service and result: ok, or the refusal (unknown_service, forbidden, refused, timeout, limit, unreachable, bad_request, shutting_down, busy).",
	}, []string{"service", "result"})
	m.streamEnds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_stream_ends_total",
		Help: "Connected streams that ended, by service and how: closed (both sides ended), error, tunnel_lost, service_removed.",
	}, []string{"service", "how"})
	m.payload = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_payload_bytes_total",
		Help: "Stream bytes by service and direction (in: from clients to backends; out: to clients), counted as they move.",
	}, []string{"service", "direction"})
	m.dialSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "ferry_backend_dial_seconds", Help: "Time to connect to a backend (resolution included), by service; failures included.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"service"})
	m.closes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_ws_closes_total", Help: "WebSocket close codes of tunnels, by side: sent (the gateway closed) or received (the client did); 1006: no close frame.",
	}, []string{"side", "code"})
	m.sessionSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "ferry_session_duration_seconds", Help: "How long tunnels lasted.",
		Buckets: prometheus.ExponentialBuckets(0.1, 4, 10), // 0.1s to about 7h
	})
	m.sessionsBy = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_sessions_by_token_total", Help: "Tunnels accepted, by named static token; \"anonymous\", \"jwt\" or \"unnamed\" otherwise.",
	}, []string{"token"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_reloads_total", Help: "Config reloads by result: applied (unchanged included) or rejected.",
	}, []string{"result"})
	m.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ferry_reload_last_success", Help: "1 if the last reload was applied (or none was tried), 0 if it was rejected.",
	})
	m.reloadOK.Set(1)
	m.revoked = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ferry_sessions_revoked_total", Help: "Sessions closed by a reload that revoked their credential.",
	})
	m.reg.MustRegister(m.streamsOpen, m.exposers, m.streamOpens, m.streamEnds, m.payload, m.dialSeconds,
		m.closes, m.sessionSeconds, m.sessionsBy, m.reloads, m.reloadOK, m.revoked,
		statsCollector{s},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// wireBytes adds up the wire bytes of every tunnel, ended or open.
func (s *Server) wireBytes() (in, out int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Read under s.mu: an ending session adds its bytes and leaves
	// s.sessions under it too, so none is counted twice or missed.
	in, out = s.wireIn.Load(), s.wireOut.Load()
	for se := range s.sessions {
		i, o := se.ws.WireBytes()
		in += i
		out += o
	}
	return in, out
}

// closed counts a tunnel's close code.
func (m *metrics) closed(side string, code int) {
	m.closes.WithLabelValues(side, strconv.Itoa(code)).Inc()
}

// statsCollector exports Stats, which the gateway keeps as atomic
// counters on its hot paths, and the gauges read at scrape time.
type statsCollector struct{ s *Server }

var (
	descSessionsOpen   = prometheus.NewDesc("ferry_sessions_open", "Tunnels open now.", nil, nil)
	descSessionsTotal  = prometheus.NewDesc("ferry_sessions_total", "Tunnels accepted.", nil, nil)
	descStreamsTotal   = prometheus.NewDesc("ferry_streams_total", "Streams connected to a backend.", nil, nil)
	descReserved       = prometheus.NewDesc("ferry_buffer_reserved_bytes", "Buffer space reserved by open sessions and streams, of [limits] buffer_budget.", nil, nil)
	descBudget         = prometheus.NewDesc("ferry_buffer_budget_bytes", "The [limits] buffer_budget.", nil, nil)
	descReaped         = prometheus.NewDesc("ferry_streams_reaped_total", "Streams reset because the client left them open after the gateway closed them.", nil, nil)
	descKeepalive      = prometheus.NewDesc("ferry_keepalive_timeouts_total", "Sessions closed because the peer stopped answering pings.", nil, nil)
	descExpired        = prometheus.NewDesc("ferry_tokens_expired_total", "Sessions closed when their signed token expired.", nil, nil)
	descRefusals       = prometheus.NewDesc("ferry_refusals_total", "Handshakes and streams refused, by reason.", []string{"reason"}, nil)
	descHandshakeRefus = prometheus.NewDesc("ferry_handshake_refusals_total", "Tunnel handshakes refused, by reason.", []string{"reason"}, nil)
	descWire           = prometheus.NewDesc("ferry_wire_bytes_total", "WebSocket bytes on the wire for all tunnels, frame headers included and after compression, by direction (in: from clients). ferry_payload_bytes_total over this is the compression ratio (the wire also carries yamux framing).", []string{"direction"}, nil)
	descDraining       = prometheus.NewDesc("ferry_draining", "1 while the gateway drains for shutdown.", nil, nil)
)

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSessionsOpen, descSessionsTotal, descStreamsTotal, descReserved, descBudget,
		descReaped, descKeepalive, descExpired, descRefusals, descHandshakeRefus, descWire, descDraining} {
		ch <- d
	}
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	st := s.Stats()
	gauge := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descSessionsOpen, int64(s.Sessions()))
	counter(descSessionsTotal, st.Sessions)
	counter(descStreamsTotal, st.StreamsOpened)
	gauge(descReserved, st.BufferReserved)
	gauge(descBudget, s.budget.limit.Load())
	counter(descReaped, st.StreamsReaped)
	counter(descKeepalive, st.KeepaliveDeaths)
	counter(descExpired, st.TokensExpired)
	handshake := []struct {
		reason string
		n      int64
	}{
		{"origin", st.RefusedOrigin}, {"host", st.RefusedHost}, {"auth", st.RefusedAuth}, {"rate", st.RefusedRate},
		{"session_limit", st.RefusedSessions}, {"pending", st.RefusedPending}, {"bad_handshake", st.RefusedBadHello},
		{"draining", st.RefusedDraining},
	}
	for _, r := range handshake {
		counter(descHandshakeRefus, r.n, r.reason)
		counter(descRefusals, r.n, r.reason)
	}
	for _, r := range []struct {
		reason string
		n      int64
	}{
		{"stream_forbidden", st.StreamsForbidden}, {"stream_limit", st.StreamsLimited}, {"backend_denied", st.BackendDenied},
		{"busy", st.Busy},
	} {
		counter(descRefusals, r.n, r.reason)
	}
	in, out := s.wireBytes()
	counter(descWire, in, dirIn)
	counter(descWire, out, dirOut)
	var d int64
	if s.isDraining() {
		d = 1
	}
	gauge(descDraining, d)
}

// countedConn counts a stream's bytes as they move, for its access line
// and the payload metric (so a long stream's traffic shows while it
// runs). It wraps the client's side: what is read from it goes in, what
// is written to it goes out.
//
// Its Close resets the stream: the pipe closes the client's side only
// when a copy failed (a backend reset or lost mid-stream, an exposer
// gone), and the client must not take a cut-off transfer for a whole one.
// An end of file is passed on with CloseWrite, a FIN.
type countedConn struct {
	tunnel.Stream
	in, out   atomic.Int64
	mIn, mOut prometheus.Counter
	reset     func()
	wasReset  atomic.Bool
}

func newCountedConn(st tunnel.Stream, m *metrics, service string, reset func()) *countedConn {
	return &countedConn{Stream: st, mIn: m.payload.WithLabelValues(service, dirIn), mOut: m.payload.WithLabelValues(service, dirOut), reset: reset}
}

func (c *countedConn) Close() error {
	if !c.wasReset.Swap(true) {
		c.reset()
	}
	return nil
}

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.Stream.Read(p)
	if n > 0 {
		c.in.Add(int64(n))
		c.mIn.Add(float64(n))
	}
	return n, err
}

func (c *countedConn) Write(p []byte) (int, error) {
	n, err := c.Stream.Write(p)
	if n > 0 {
		c.out.Add(int64(n))
		c.mOut.Add(float64(n))
	}
	return n, err
}
