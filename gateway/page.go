package gateway

import (
	_ "embed"
	"html/template"
	"net/http"
	"sort"
)

//go:embed page.html
var pageHTML string

var pageTmpl = template.Must(template.New("page").Parse(pageHTML))

type pageService struct {
	Name, Description string
	Public            bool
}

// servePage serves the demo page: what Ferry is, the tunnel URL, the
// services and how to connect.
func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	var svcs []pageService
	for _, svc := range s.cfg.Services {
		svcs = append(svcs, pageService{svc.Name, svc.Description, svc.Public})
	}
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Name < svcs[j].Name })
	scheme := "ws"
	if r.TLS != nil {
		scheme = "wss"
	}
	data := struct {
		TunnelURL string
		Services  []pageService
	}{scheme + "://" + r.Host + s.cfg.Server.TunnelPath, svcs}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_ = pageTmpl.Execute(w, data)
}
