package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Warnings lists what `ferry serve -check` warns about without failing:
// a config with no services, and backends whose host name resolves (now,
// from here) to addresses in [network] deny, which the gateway would
// refuse to dial. They are warnings, not errors, because a name may
// resolve otherwise where and when the gateway runs; a denied IP literal
// is an error of the config itself.
func (s *Server) Warnings(ctx context.Context) []string {
	cfg := s.config()
	var out []string
	if len(cfg.Services) == 0 {
		out = append(out, "no [services]: every stream would be refused")
	}
	for _, name := range cfg.ServiceNames() {
		svc := cfg.Services[name]
		host, _, err := net.SplitHostPort(svc.Backend)
		if err != nil || strings.HasPrefix(svc.Backend, "builtin:") {
			continue
		}
		if _, err := netip.ParseAddr(host); err == nil {
			continue // a literal: the config's own check
		}
		ips, err := s.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			out = append(out, fmt.Sprintf("services.%s.backend: cannot resolve %s here: %v", name, host, err))
			continue
		}
		var denied []string
		for _, ip := range ips {
			if cfg.Network.Denies(ip) {
				denied = append(denied, ip.String())
			}
		}
		switch {
		case len(denied) == len(ips):
			out = append(out, fmt.Sprintf("services.%s.backend: %s resolves only to addresses in network.deny (%s): every stream to it would be refused", name, host, strings.Join(denied, ", ")))
		case len(denied) > 0:
			out = append(out, fmt.Sprintf("services.%s.backend: %s resolves partly to addresses in network.deny (%s), which are never dialed", name, host, strings.Join(denied, ", ")))
		}
	}
	return out
}
