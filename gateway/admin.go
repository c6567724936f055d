package gateway

import (
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminHandler serves the operator's endpoints for [admin] listen:
// /metrics (Prometheus: the gateway's metrics and the Go and process
// collectors), /healthz (200 while the process runs) and /readyz (200
// while accepting tunnels, 503 from the moment a drain begins).
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if s.isDraining() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.HandleFunc("/healthz", serveHealthz)
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{
		ErrorLog: errorLog{s}, ErrorHandling: promhttp.ContinueOnError,
	}))
	return mux
}

// serveHealthz answers that the process is up.
func serveHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, "ok\n")
}

// errorLog gives promhttp the gateway's log.
type errorLog struct{ s *Server }

func (l errorLog) Println(v ...any) { l.s.log.Error("metrics", "error", v) }
