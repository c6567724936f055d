package gen

import (
	"fmt"
	"go/format"
	"strconv"
	"strings"
)

// goFile writes the Go SDK: a Client over client.Session with one method
// per service. The framing itself lives in package framing, so the file
// stays thin.
func goFile(c *Catalog, pkg string) ([]byte, error) {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("// %s\n\n", Header)
	p("// Package %s is a Ferry SDK: a Client with one method per service of\n", pkg)
	p("// the gateway, each opening a stream to it. Regenerate it with ferry gen\n")
	p("// when the gateway's services change; `ferry gen -check` says when it is\n")
	p("// stale.\n//\n")
	p("%s", mapping(c, "// ", func(i Identifiers) string { return i.Go }))
	p("package %s\n\n", pkg)
	framed := false
	for _, s := range c.Services {
		framed = framed || s.Framed()
	}
	p("import (\n\t\"context\"\n\t\"net\"\n\n\t\"github.com/ferrygw/ferry/client\"\n")
	if framed {
		p("\t\"github.com/ferrygw/ferry/framing\"\n")
	}
	p(")\n\n")
	p(`// Client is a connection to a Ferry gateway, kept up across tunnel
// failures by package client, with one method per service.
type Client struct{ session *client.Session }

// Connect connects to the gateway's tunnel URL, ws:// or wss:// and its
// tunnel path (%s); opts may be nil.
func Connect(ctx context.Context, url string, opts *client.Options) (*Client, error) {
	s, err := client.Connect(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	return &Client{session: s}, nil
}

// Session returns the client's session, for Forward and for services this
// SDK does not know.
func (c *Client) Session() *client.Session { return c.session }

// Dial opens a stream to a service by name.
func (c *Client) Dial(ctx context.Context, service string) (net.Conn, error) {
	conn, err := c.session.Dial(ctx, service)
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// Close closes the tunnel and every stream on it.
func (c *Client) Close() error { return c.session.Close() }
`, strconv.Quote(c.TunnelPath))
	for _, s := range c.Services {
		p("\n")
		id, name := s.Identifiers.Go, strconv.Quote(s.Name)
		switch s.Framing {
		case "lines":
			p("// %s opens service %s, newline-delimited UTF-8 messages of at most\n// %d bytes.", id, name, s.MaxMessage)
		case "u32be":
			p("// %s opens service %s, messages of at most %d bytes, each after\n// its length as a 4-byte big-endian integer.", id, name, s.MaxMessage)
		default:
			p("// %s opens a stream to service %s.", id, name)
		}
		if s.Public {
			p(" It is public: no credential is needed.")
		}
		p("\n")
		if d := strings.TrimSpace(s.Description); d != "" {
			p("//\n")
			for _, line := range strings.Split(d, "\n") {
				p("// %s\n", strings.TrimRight(line, " \t\r"))
			}
		}
		switch s.Framing {
		case "lines", "u32be":
			typ, ctor := "LinesConn", "NewLines"
			if s.Framing == "u32be" {
				typ, ctor = "U32BEConn", "NewU32BE"
			}
			p("func (c *Client) %s(ctx context.Context) (*framing.%s, error) {\n", id, typ)
			p("\tconn, err := c.session.Dial(ctx, %s)\n\tif err != nil {\n\t\treturn nil, err\n\t}\n", name)
			p("\treturn framing.%s(conn, %d), nil\n}\n", ctor, s.MaxMessage)
		default:
			p("func (c *Client) %s(ctx context.Context) (net.Conn, error) { return c.Dial(ctx, %s) }\n", id, name)
		}
	}
	src, err := format.Source([]byte(b.String()))
	if err != nil {
		return nil, fmt.Errorf("gen: the Go output does not parse (a bug): %v", err)
	}
	return src, nil
}
