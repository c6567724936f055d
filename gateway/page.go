package gateway

import (
	"bytes"
	_ "embed"
	"fmt"
	"github.com/ferrygw/ferry/gen"
	"html/template"
	"net/http"
	"slices"
	"sort"
	"strconv"
)

//go:embed page.html
var pageHTML string

var pageTmpl = template.Must(template.New("page").Parse(pageHTML))

type pageService struct {
	Name, Description string
	Public            bool
}

// servePage serves the demo page: what Ferry is, the tunnel URL, the
// services and how to connect, and a live demo that runs the browser
// client (/ferry/ferry.js): it connects, says hello to the built-in echo
// service and shows what comes back, and lets a person pick any service,
// paste a token, send text and measure throughput through an echo.
func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	var svcs []pageService
	echoes := []string{}
	cfg := s.config()
	for _, svc := range cfg.Services {
		svcs = append(svcs, pageService{svc.Name, svc.Description, svc.Public})
		if svc.Backend == builtinEcho {
			echoes = append(echoes, svc.Name)
		}
	}
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Name < svcs[j].Name })
	sort.Strings(echoes)
	data := struct {
		TunnelURL, TunnelPath, DefaultService string
		DefaultCall                           string // the SDK call that opens DefaultService
		Services                              []pageService
		EchoServices                          []string
	}{TunnelPath: cfg.Server.TunnelPath, Services: svcs, EchoServices: echoes}
	// The demo starts with a public echo service, else a public one,
	// else the first.
	for _, pick := range []func(pageService) bool{
		func(p pageService) bool { return p.Public && slices.Contains(echoes, p.Name) },
		func(p pageService) bool { return p.Public },
		func(pageService) bool { return true },
	} {
		if i := slices.IndexFunc(svcs, pick); i >= 0 {
			data.DefaultService = svcs[i].Name
			break
		}
	}
	if svc := cfg.Services[data.DefaultService]; svc != nil && svc.Public && !svc.Framed() {
		data.DefaultCall = gen.TSIdent(svc.Name) + "()"
	} else {
		data.DefaultCall = fmt.Sprintf("dial(%q)", data.DefaultService)
	}
	// The URL the browser knows the gateway by: behind a trusted proxy,
	// the proxy's.
	host, scheme := s.requestHost(r)
	ws := "ws"
	if scheme == "https" {
		ws = "wss"
	}
	data.TunnelURL = ws + "://" + host + cfg.Server.TunnelPath
	var page bytes.Buffer
	if err := pageTmpl.Execute(&page, data); err != nil {
		http.Error(w, "the page failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Length", strconv.Itoa(page.Len()))
	if r.Method == http.MethodHead {
		return
	}
	boundWrite(w, int64(page.Len()))
	_, _ = w.Write(page.Bytes())
}
