package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/tunnel"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads /metrics from the admin handler and parses it with the
// Prometheus text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// value is the value of the sample of family name whose labels include
// labels ("k=v" pairs), 0 when there is none; for a histogram, its count.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
next:
	for _, m := range f.Metric {
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return 0
}

// TestMetrics: a scripted session moves the counters by exactly what it
// did, a long stream's bytes show while it runs, and the standard Go and
// process collectors are there.
func TestMetrics(t *testing.T) {
	t.Parallel()
	g := startGateway(t, baseConfig(""))
	admin := httptest.NewServer(g.srv.AdminHandler())
	defer admin.Close()
	before := scrape(t, admin.URL)

	s, err := client.Connect(context.Background(), g.url, &client.Options{MinBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// One stream that stays open: its bytes must show before it ends.
	long, err := s.Dial(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("x"), 300<<10)
	if _, err := long.Write(payload); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(long, make([]byte, len(payload))); err != nil {
		t.Fatal(err)
	}
	// The echo's last write is counted when it returns, which may be just
	// after the client has read its bytes: wait for the count.
	var during map[string]*dto.MetricFamily
	var in, out float64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		during = scrape(t, admin.URL)
		in, out = value(during, "ferry_payload_bytes_total", "service=echo", "direction=in"), value(during, "ferry_payload_bytes_total", "service=echo", "direction=out")
		if in == float64(len(payload)) && out == float64(len(payload)) || time.Now().After(deadline) {
			break
		}
	}
	if in != float64(len(payload)) || out != float64(len(payload)) {
		t.Errorf("while the stream runs: payload in %v out %v, want %d each", in, out, len(payload))
	}
	if n := value(during, "ferry_streams_open", "service=echo"); n != 1 {
		t.Errorf("ferry_streams_open{echo} = %v while one is open", n)
	}
	// A second, short stream, and a refusal.
	short, err := s.Dial(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	short.Write([]byte("hello"))
	short.CloseWrite()
	if b, err := io.ReadAll(short); err != nil || string(b) != "hello" {
		t.Fatalf("short stream: %q %v", b, err)
	}
	short.Close()
	var oe *tunnel.OpenError
	if _, err := s.Dial(context.Background(), "nope"); !errors.As(err, &oe) {
		t.Fatalf("unknown service: %v", err)
	}
	long.Close()
	waitUntil(t, 5*time.Second, "the long stream to end", func() bool {
		return value(scrape(t, admin.URL), "ferry_streams_open", "service=echo") == 0
	})
	s.Close()
	waitUntil(t, 5*time.Second, "the session to end", func() bool { return g.srv.Sessions() == 0 })
	after := scrape(t, admin.URL)

	delta := func(name string, labels ...string) float64 {
		return value(after, name, labels...) - value(before, name, labels...)
	}
	wantTotal := float64(len(payload) + 5)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"ferry_sessions_total", nil, 1},
		{"ferry_sessions_by_token_total", []string{"token=anonymous"}, 1},
		{"ferry_streams_total", nil, 2},
		{"ferry_stream_opens_total", []string{"service=echo", "result=ok"}, 2},
		{"ferry_stream_opens_total", []string{"service=", "result=unknown_service"}, 1},
		{"ferry_stream_ends_total", []string{"service=echo", "how=closed"}, 2},
		{"ferry_payload_bytes_total", []string{"service=echo", "direction=in"}, wantTotal},
		{"ferry_payload_bytes_total", []string{"service=echo", "direction=out"}, wantTotal},
		{"ferry_backend_dial_seconds", []string{"service=echo"}, 2},
		{"ferry_session_duration_seconds", nil, 1},
		{"ferry_ws_closes_total", []string{"side=received", "code=1000"}, 1},
		{"ferry_streams_open", []string{"service=echo"}, 0},
		{"ferry_sessions_open", nil, 0},
	} {
		if got := delta(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v moved by %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// The wire carries the payload compressed ("x" repeated shrinks to
	// almost nothing) plus framing: it moved both ways.
	for _, dir := range []string{"in", "out"} {
		if d := delta("ferry_wire_bytes_total", "direction="+dir); d <= 0 {
			t.Errorf("ferry_wire_bytes_total{%s} moved by %v", dir, d)
		}
	}
	for _, name := range []string{"go_goroutines", "process_open_fds", "ferry_reload_last_success", "ferry_handshake_refusals_total"} {
		if after[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}
}
