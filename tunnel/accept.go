//go:build !js

package tunnel

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ferrygw/ferry/compress"
)

// websocketGUID is the constant of RFC 6455 section 1.3.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptOptions configures Accept. The zero value (or nil) accepts any
// origin, selects no subprotocol and limits messages to DefaultReadLimit.
type AcceptOptions struct {
	// Subprotocols lists the subprotocols the server speaks, in its order of
	// preference; the first one the client also offers is selected.
	Subprotocols []string
	// CheckOrigin, when set, is called before the upgrade; an error refuses
	// the handshake with 403 and the error's text. Nil checks nothing.
	CheckOrigin func(r *http.Request) error
	// ReadLimit is the largest message accepted (default DefaultReadLimit).
	ReadLimit int64
	// ResponseHeader holds extra headers for the 101 response.
	ResponseHeader http.Header
	// Compression, when set, accepts permessage-deflate (RFC 7692) if the
	// client offers it; nil never compresses.
	Compression *compress.Options
}

// HandshakeError is a refused opening handshake: the HTTP status the server
// answers with and why.
type HandshakeError struct {
	Status int
	Reason string
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("tunnel: websocket handshake refused: %d %s: %s", e.Status, http.StatusText(e.Status), e.Reason)
}

// Accept upgrades the request to a WebSocket (RFC 6455 section 4.2). On a
// bad request it writes a plain-text HTTP error with the reason and returns
// a *HandshakeError; the caller writes nothing more.
func Accept(w http.ResponseWriter, r *http.Request, opts *AcceptOptions) (*Conn, error) {
	if opts == nil {
		opts = &AcceptOptions{}
	}
	key, herr := checkRequest(r)
	if herr == nil && opts.CheckOrigin != nil {
		if err := opts.CheckOrigin(r); err != nil {
			herr = &HandshakeError{Status: http.StatusForbidden, Reason: err.Error()}
		}
	}
	if herr != nil {
		refuse(w, herr)
		return nil, herr
	}
	subprotocol := selectSubprotocol(r.Header, opts.Subprotocols)
	var params compress.Params
	deflate := false
	if opts.Compression != nil {
		// A malformed header declines compression; it never fails the
		// handshake (RFC 7692 section 5).
		if exts, err := compress.ParseExtensions(r.Header.Values("Sec-WebSocket-Extensions")); err == nil {
			params, deflate = compress.Negotiate(exts, *opts.Compression)
		}
	}

	hj, ok := w.(http.Hijacker)
	if !ok {
		herr := &HandshakeError{Status: http.StatusInternalServerError, Reason: "the HTTP server cannot hand over the connection (HTTP/2 is not supported)"}
		refuse(w, herr)
		return nil, herr
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, fmt.Errorf("tunnel: hijack: %w", err)
	}
	// The HTTP server's deadlines must not outlive the handshake.
	_ = nc.SetDeadline(time.Time{})

	bw := brw.Writer
	bw.Reset(nc)
	bw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ")
	bw.WriteString(acceptKey(key))
	bw.WriteString("\r\n")
	if subprotocol != "" {
		bw.WriteString("Sec-WebSocket-Protocol: ")
		bw.WriteString(subprotocol)
		bw.WriteString("\r\n")
	}
	if deflate {
		bw.WriteString("Sec-WebSocket-Extensions: ")
		bw.WriteString(params.String())
		bw.WriteString("\r\n")
	}
	for k, vs := range opts.ResponseHeader {
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("tunnel: write handshake response: %w", err)
	}
	// net/http's reader reads through its connection state, which it
	// would keep alive (and lock on every read) for the life of the
	// WebSocket. Read the socket directly unless the client already sent
	// bytes past the handshake, which only that reader holds.
	var br *bufio.Reader
	if brw.Reader.Buffered() > 0 {
		br = brw.Reader
	}
	c := newConn(nc, br, false, subprotocol, opts.ReadLimit)
	if deflate {
		c.enableCompression(params, *opts.Compression)
	}
	return c, nil
}

// checkRequest validates an opening handshake request and returns its
// Sec-WebSocket-Key.
func checkRequest(r *http.Request) (string, *HandshakeError) {
	bad := func(format string, args ...any) *HandshakeError {
		return &HandshakeError{Status: http.StatusBadRequest, Reason: fmt.Sprintf(format, args...)}
	}
	if r.Method != http.MethodGet {
		return "", &HandshakeError{Status: http.StatusMethodNotAllowed, Reason: "a WebSocket handshake must use GET, not " + r.Method}
	}
	if !r.ProtoAtLeast(1, 1) {
		return "", bad("a WebSocket handshake needs HTTP/1.1 or later, not %s", r.Proto)
	}
	if r.ProtoMajor > 1 {
		return "", bad("WebSocket over %s is not supported; use HTTP/1.1", r.Proto)
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") {
		return "", &HandshakeError{Status: http.StatusUpgradeRequired, Reason: "the Connection header does not contain \"upgrade\""}
	}
	if !headerHasToken(r.Header, "Upgrade", "websocket") {
		return "", &HandshakeError{Status: http.StatusUpgradeRequired, Reason: "the Upgrade header does not contain \"websocket\""}
	}
	if v := r.Header.Values("Sec-WebSocket-Version"); len(v) != 1 || strings.TrimSpace(v[0]) != "13" {
		return "", &HandshakeError{Status: http.StatusUpgradeRequired, Reason: "unsupported Sec-WebSocket-Version; this server speaks 13"}
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return "", bad("the request must carry exactly one Sec-WebSocket-Key")
	}
	key := strings.TrimSpace(keys[0])
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 16 {
		return "", bad("Sec-WebSocket-Key is not the base64 of 16 bytes")
	}
	return key, nil
}

// refuse answers a refused handshake with a plain-text reason.
func refuse(w http.ResponseWriter, herr *HandshakeError) {
	h := w.Header()
	if herr.Status == http.StatusUpgradeRequired {
		h.Set("Sec-WebSocket-Version", "13")
		h.Set("Upgrade", "websocket")
		h.Set("Connection", "Upgrade")
	}
	if herr.Status == http.StatusMethodNotAllowed {
		h.Set("Allow", http.MethodGet)
	}
	http.Error(w, herr.Reason, herr.Status)
}

// acceptKey computes Sec-WebSocket-Accept for a Sec-WebSocket-Key.
func acceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte(websocketGUID))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// headerHasToken reports whether any value of header name, read as a comma
// list, holds token (compared case-insensitively).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// headerTokens returns every comma-separated token of header name.
func headerTokens(h http.Header, name string) []string {
	var out []string
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

// selectSubprotocol picks the first of the server's subprotocols that the
// client offered.
func selectSubprotocol(h http.Header, server []string) string {
	offered := headerTokens(h, "Sec-WebSocket-Protocol")
	for _, s := range server {
		for _, o := range offered {
			if o == s {
				return s
			}
		}
	}
	return ""
}
