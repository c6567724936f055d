package gateway

import (
	"fmt"
	"net/http"
)

// AdminHandler serves the operator's endpoints for [admin] listen:
// /readyz (200 while accepting tunnels, 503 while draining) and /metrics
// (the counters of Stats and the open sessions, in the Prometheus text
// format).
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		draining := s.draining
		s.mu.Unlock()
		w.Header().Set("Cache-Control", "no-store")
		if draining {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		st := s.Stats()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		gauge := func(name, help string, v int64) {
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
		}
		counter := func(name, help string, v int64) {
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
		}
		gauge("ferry_sessions_open", "Tunnels open now.", int64(s.Sessions()))
		counter("ferry_sessions_total", "Tunnels accepted.", st.Sessions)
		counter("ferry_streams_total", "Streams connected to a backend.", st.StreamsOpened)
		gauge("ferry_buffer_reserved_bytes", "Buffer space reserved by open sessions and streams, of [limits] buffer_budget.", st.BufferReserved)
		gauge("ferry_buffer_budget_bytes", "The [limits] buffer_budget.", int64(s.cfg.Limits.BufferBudget))
		counter("ferry_streams_reaped_total", "Streams reset because the client left them open after the gateway closed them.", st.StreamsReaped)
		counter("ferry_keepalive_timeouts_total", "Sessions closed because the peer stopped answering pings.", st.KeepaliveDeaths)
		counter("ferry_tokens_expired_total", "Sessions closed when their signed token expired.", st.TokensExpired)
		fmt.Fprintf(w, "# HELP ferry_refusals_total Handshakes and streams refused, by reason.\n# TYPE ferry_refusals_total counter\n")
		for _, r := range []struct {
			reason string
			n      int64
		}{
			{"origin", st.RefusedOrigin}, {"auth", st.RefusedAuth}, {"rate", st.RefusedRate},
			{"session_limit", st.RefusedSessions}, {"pending", st.RefusedPending}, {"bad_handshake", st.RefusedBadHello},
			{"stream_forbidden", st.StreamsForbidden}, {"stream_limit", st.StreamsLimited}, {"backend_denied", st.BackendDenied},
			{"busy", st.Busy},
		} {
			fmt.Fprintf(w, "ferry_refusals_total{reason=%q} %d\n", r.reason, r.n)
		}
	})
	return mux
}
