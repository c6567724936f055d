//go:build js && wasm

package main

import (
	"context"
	"errors"
	"io"
	"math"
	"strconv"
	"sync"
	"syscall/js"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/tunnel"
)

// connectTimeout bounds the first connection of a gateway; later ones are
// the Session's business (it retries with backoff).
const connectTimeout = 30 * time.Second

// closeWait bounds how long closing a gateway waits for the WebSocket's
// closing handshake.
const closeWait = 5 * time.Second

// defaultDialTimeout bounds a dial that the page gave no timeout: the wait
// for a tunnel while reconnecting and the gateway's answer together.
const defaultDialTimeout = 30 * time.Second

// Why a dial's context ended, besides the gateway's connection closing.
var (
	errDialAborted = errors.New("the dial was aborted")
	errDialTimeout = errors.New("the dial timed out")
)

// readSize is the most a read hands to JavaScript at once.
const readSize = 256 << 10

// api is the internal interface that ferry.js drives. Gateways and sockets
// are known to JavaScript by number. Every function returns at once;
// those that wait take the resolve and reject functions of a Promise and
// settle them from a goroutine.
type api struct {
	errorClass js.Value // ferry.js's FerryError

	mu       sync.Mutex
	next     int
	gateways map[int]*gateway
	sockets  map[int]*socket
	dials    map[int]*pendingDial // dials in progress, by number
}

// pendingDial is a dial in progress, which cancel aborts.
type pendingDial struct {
	g      *gateway
	cancel context.CancelCauseFunc
}

type gateway struct {
	a         *api
	protocols []string
	onstatus  js.Value // called as onstatus(state, error or undefined)

	mu    sync.Mutex
	sess  *client.Session
	last  *wsConn // the WebSocket of the latest tunnel
	wasUp bool    // a tunnel was up since the last status
	down  error   // while reconnecting: why (as the last status said), else nil

	// dialing counts the dials in progress, which closeGateway waits for
	// (Add under a.mu, with the gateway still in a.gateways).
	dialing sync.WaitGroup
}

type socket struct {
	g    *gateway
	conn *client.Conn
}

// waitSize is the buffer a read waits with: an idle socket with a pending
// read holds only this much; a read that fills it takes a readSize buffer
// for whatever else is already there.
const waitSize = 16 << 10

var (
	waitBufs = sync.Pool{New: func() any { b := make([]byte, waitSize); return &b }}
	readBufs = sync.Pool{New: func() any { b := make([]byte, readSize); return &b }}
)

func newAPI() *api {
	return &api{gateways: map[int]*gateway{}, sockets: map[int]*socket{}, dials: map[int]*pendingDial{}}
}

// object returns the API as a JavaScript object of functions.
func (a *api) object() js.Value {
	o := js.Global().Get("Object").New()
	for name, f := range map[string]func([]js.Value) any{
		"connect":      a.connect,
		"closeGateway": a.closeGateway,
		"dial":         a.dial,
		"cancelDial":   a.cancelDial,
		"read":         a.read,
		"write":        a.write,
		"closeWrite":   a.closeWrite,
		"closeSocket":  a.closeSocket,
		"stats":        a.stats,
	} {
		o.Set(name, js.FuncOf(func(_ js.Value, args []js.Value) any { return f(args) }))
	}
	return o
}

func (a *api) add(put func(id int)) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.next++
	put(a.next)
	return a.next
}

// connect(url, token, keepalive, onstatus, resolve, reject) resolves with
// a gateway number once the first tunnel is up. keepalive is in
// milliseconds, 0 for the default (see wsConn.KeepAlive).
func (a *api) connect(args []js.Value) any {
	url, token, keepalive, onstatus, resolve, reject := args[0].String(), args[1].String(), args[2].Float(), args[3], args[4], args[5]
	g := &gateway{a: a, onstatus: onstatus, protocols: []string{tunnel.Subprotocol}}
	if token != "" {
		if !validToken(token) {
			reject.Invoke(a.jsError(errors.New("the token holds a character that a WebSocket subprotocol cannot carry (tokens are base64url, JWTs base64url parts joined by dots)")))
			return nil
		}
		g.protocols = append(g.protocols, "ferry.token."+token)
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
		defer cancel()
		sess, err := client.Connect(ctx, url, &client.Options{Dialer: g.dial, OnStatus: g.status, Keepalive: millis(keepalive)})
		if err != nil {
			reject.Invoke(a.jsError(err))
			return
		}
		g.mu.Lock()
		g.sess = sess
		g.mu.Unlock()
		resolve.Invoke(a.add(func(id int) { a.gateways[id] = g }))
	}()
	return nil
}

// millis turns milliseconds from JavaScript into a Duration; what is not
// a positive finite number is 0 (the default).
func millis(ms float64) time.Duration {
	if !(ms > 0) || ms > float64(math.MaxInt64/int64(time.Millisecond)) {
		return 0
	}
	return time.Duration(ms * float64(time.Millisecond))
}

// validToken reports whether tok is made of the characters of an HTTP
// token (RFC 9110 tchar), as a subprotocol must be; base64url and JWTs
// are.
func validToken(tok string) bool {
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == '~' || c == '!' || c == '#' || c == '$' ||
			c == '%' || c == '&' || c == '\'' || c == '*' || c == '+' || c == '^' || c == '`' || c == '|':
		default:
			return false
		}
	}
	return true
}

// dial is the Session's Dialer: the browser's WebSocket.
func (g *gateway) dial(ctx context.Context, url string) (client.TunnelConn, error) {
	c, err := dialWebSocket(ctx, url, g.protocols)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.last = c
	g.mu.Unlock()
	return c, nil
}

// status passes the Session's state changes to ferry.js. When a tunnel
// that was up dies, the error is the close code and reason the gateway
// sent, if it sent one.
func (g *gateway) status(st client.Status) {
	var state string
	err := st.Err
	switch st.State {
	case client.Connected:
		state = "connected"
		g.mu.Lock()
		g.wasUp, g.down = true, nil
		g.mu.Unlock()
	case client.Reconnecting:
		state = "reconnecting"
		g.mu.Lock()
		if errors.Is(err, client.ErrGatewayDraining) {
			// A GoAway: the gateway is going away, as its 1001 will say
			// once this tunnel's sockets are done.
			err = &CloseError{Code: 1001, Reason: "the gateway is draining: new sockets go to a new tunnel", Opened: true}
		} else if g.wasUp && g.last != nil {
			if f := g.last.failure(); f != nil {
				err = f // a keepalive timeout, a violation by the gateway
			} else if ce := g.last.closeInfo(); ce != nil && !g.last.closedHere() {
				err = ce
			}
		}
		g.wasUp = false
		if err != nil {
			g.down = err
		}
		g.mu.Unlock()
	case client.Closed:
		state = "closed"
	}
	jerr := js.Undefined()
	if err != nil {
		jerr = g.a.jsError(err)
	}
	g.onstatus.Invoke(state, jerr)
}

// closeGateway(gw, resolve) closes the Session and every socket on it.
//
// First it ends every read of a stream of the Session, because yamux
// v0.1.2's Stream.Read spins while its Session shuts down (it goes back
// to waiting on the closed shutdown channel until Close marks the stream
// closed), and js/wasm has no preemption: a read waiting for an open's
// answer or for data when Close begins would hold the only thread, and
// Close, waiting for yamux's receive loop, would never finish. So dials in
// progress are cancelled and waited for, and every socket's read gets a
// deadline in the past (a read that then meets the shut-down Session
// still leaves at once: its deadline has passed).
func (a *api) closeGateway(args []js.Value) any {
	id, resolve := args[0].Int(), args[1]
	a.mu.Lock()
	g := a.gateways[id]
	delete(a.gateways, id)
	var conns []*client.Conn
	for sid, s := range a.sockets {
		if s.g == g {
			delete(a.sockets, sid)
			conns = append(conns, s.conn)
		}
	}
	for _, d := range a.dials {
		if d.g == g {
			d.cancel(client.ErrClosed)
		}
	}
	a.mu.Unlock()
	go func() {
		if g != nil {
			g.dialing.Wait()
			for _, c := range conns {
				_ = c.SetReadDeadline(time.Unix(1, 0))
			}
			g.mu.Lock()
			sess := g.sess
			g.mu.Unlock()
			sess.Close()
			// Resolve once the WebSocket has closed, within reason.
			g.mu.Lock()
			last := g.last
			g.mu.Unlock()
			if last != nil {
				select {
				case <-last.released:
				case <-time.After(closeWait):
				}
			}
		}
		resolve.Invoke()
	}()
	return nil
}

// dial(gw, service, timeout, resolve, reject) resolves with a socket
// number once the gateway has connected to the service, and returns the
// dial's number, which cancelDial takes. timeout is in milliseconds (0 for
// defaultDialTimeout, Infinity for none); it bounds the wait for a tunnel
// while reconnecting and the gateway's answer together. An aborted or
// timed-out dial leaves nothing behind: the Session closes a stream whose
// open it gave up on, and a socket that arrives too late is closed here.
func (a *api) dial(args []js.Value) any {
	id, service, timeout, resolve, reject := args[0].Int(), args[1].String(), args[2].Float(), args[3], args[4]
	a.mu.Lock()
	g := a.gateways[id]
	if g != nil {
		g.dialing.Add(1)
	}
	a.mu.Unlock()
	if g == nil {
		reject.Invoke(a.jsError(client.ErrClosed))
		return 0
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	d := millis(timeout)
	if d == 0 && !math.IsInf(timeout, 1) {
		d = defaultDialTimeout
	}
	stopTimer := func() bool { return true }
	if d > 0 {
		stopTimer = time.AfterFunc(d, func() { cancel(errDialTimeout) }).Stop
	}
	did := a.add(func(did int) { a.dials[did] = &pendingDial{g, cancel} })
	go func() {
		conn, err := g.sess.Dial(ctx, service)
		g.dialing.Done()
		stopTimer()
		a.mu.Lock()
		delete(a.dials, did)
		a.mu.Unlock()
		cause := context.Cause(ctx)
		cancel(nil)
		if err == nil && cause != nil {
			// Aborted or timed out as the gateway answered.
			conn.Close()
			err = cause
		}
		if err != nil {
			reject.Invoke(a.jsError(g.dialError(service, d, cause, err)))
			return
		}
		s := &socket{g: g, conn: conn}
		open := false
		sid := a.add(func(sid int) {
			if open = a.gateways[id] == g; open {
				a.sockets[sid] = s
			}
		})
		if !open { // the gateway was closed meanwhile
			conn.Close()
			reject.Invoke(a.jsError(client.ErrClosed))
			return
		}
		resolve.Invoke(sid)
	}()
	return did
}

// dialError says why a dial failed: for a timeout, how long it waited and,
// while the tunnel is down, why it is (with that close code and reason).
func (g *gateway) dialError(service string, d time.Duration, cause, err error) error {
	switch cause {
	case errDialAborted, client.ErrClosed:
		return cause
	case errDialTimeout:
		g.mu.Lock()
		down := g.down
		g.mu.Unlock()
		if down != nil {
			return &dialTimeoutError{service: service, after: d, down: down}
		}
		return &dialTimeoutError{service: service, after: d, err: err}
	}
	return err
}

// dialTimeoutError is a dial that timed out, waiting for a tunnel that is
// down (down) or for the gateway's answer (err).
type dialTimeoutError struct {
	service   string
	after     time.Duration
	down, err error
}

func (e *dialTimeoutError) Error() string {
	msg := "dial " + strconv.Quote(e.service) + ": timed out after " + e.after.String()
	if e.down != nil {
		return msg + " while the tunnel is down: " + e.down.Error()
	}
	return msg + ": " + e.err.Error()
}

// Unwrap gives the reason the tunnel is down, whose close code and reason
// the FerryError carries.
func (e *dialTimeoutError) Unwrap() error { return e.down }

// cancelDial(dial) aborts a dial in progress; it then rejects.
func (a *api) cancelDial(args []js.Value) any {
	a.mu.Lock()
	d := a.dials[args[0].Int()]
	a.mu.Unlock()
	if d != nil {
		d.cancel(errDialAborted)
	}
	return nil
}

func (a *api) socket(id int) *socket {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sockets[id]
}

var errSocketClosed = errors.New("the socket is closed")

// read(sock, resolve, reject) resolves with the next bytes the service
// sent, as a Uint8Array of at most readSize bytes, or with null at its end.
// ferry.js calls it only when the page pulls from the ReadableStream, so a
// page that stops reading stops this side reading, and yamux's window
// stops the gateway, which stops reading from the service.
func (a *api) read(args []js.Value) any {
	s, resolve, reject := a.socket(args[0].Int()), args[1], args[2]
	if s == nil {
		reject.Invoke(a.jsError(errSocketClosed))
		return nil
	}
	go func() {
		wp := waitBufs.Get().(*[]byte)
		defer waitBufs.Put(wp)
		for {
			n, err := s.conn.Read(*wp)
			if n == len(*wp) && err == nil {
				// A burst: hand over what else is buffered too, without
				// waiting for more (a deadline in the past returns at
				// once when nothing is buffered).
				bp := readBufs.Get().(*[]byte)
				copy(*bp, (*wp)[:n])
				_ = s.conn.SetReadDeadline(time.Unix(1, 0))
				m, _ := s.conn.Read((*bp)[n:])
				_ = s.conn.SetReadDeadline(time.Time{})
				chunk := uint8Array.New(n + m)
				js.CopyBytesToJS(chunk, (*bp)[:n+m])
				readBufs.Put(bp)
				resolve.Invoke(chunk)
				return
			}
			if n > 0 {
				chunk := uint8Array.New(n)
				js.CopyBytesToJS(chunk, (*wp)[:n])
				resolve.Invoke(chunk)
				return
			}
			if err == io.EOF {
				resolve.Invoke(js.Null())
				return
			}
			if err != nil {
				reject.Invoke(a.jsError(err))
				return
			}
		}
	}()
	return nil
}

// write(sock, bytes, resolve, reject) resolves once yamux has taken the
// bytes (a Uint8Array, copied at once), which waits while the stream's
// window is full.
func (a *api) write(args []js.Value) any {
	s, data, resolve, reject := a.socket(args[0].Int()), args[1], args[2], args[3]
	if s == nil {
		reject.Invoke(a.jsError(errSocketClosed))
		return nil
	}
	// A copy of exactly the chunk's size: a write stalled on a full window
	// holds only what the page handed over.
	b := make([]byte, data.Get("byteLength").Int())
	js.CopyBytesToGo(b, data)
	go func() {
		_, err := s.conn.Write(b)
		if err != nil {
			reject.Invoke(a.jsError(err))
			return
		}
		resolve.Invoke()
	}()
	return nil
}

// closeWrite(sock, resolve, reject) half-closes: the service reads end of
// file and can still answer.
func (a *api) closeWrite(args []js.Value) any {
	s, resolve, reject := a.socket(args[0].Int()), args[1], args[2]
	if s == nil {
		reject.Invoke(a.jsError(errSocketClosed))
		return nil
	}
	go func() {
		if err := s.conn.CloseWrite(); err != nil {
			reject.Invoke(a.jsError(err))
			return
		}
		resolve.Invoke()
	}()
	return nil
}

// closeSocket(sock) closes the stream both ways and forgets it.
func (a *api) closeSocket(args []js.Value) any {
	id := args[0].Int()
	a.mu.Lock()
	s := a.sockets[id]
	delete(a.sockets, id)
	a.mu.Unlock()
	if s != nil {
		go s.conn.Close()
	}
	return nil
}

// stats() returns counts of what this side holds, for tests: gateways
// and sockets open, dials in progress, and WebSockets whose event
// handlers are not yet released (the only js.FuncOf made after start).
func (a *api) stats([]js.Value) any {
	a.mu.Lock()
	defer a.mu.Unlock()
	return map[string]any{"gateways": len(a.gateways), "sockets": len(a.sockets), "dials": len(a.dials), "webSockets": liveWebSockets.Load()}
}

// jsError returns err as a FerryError: the message, and the gateway's code
// and reason when it gave them: the open status (1 to 8) and message of a
// refused dial, or the close code (4401, 4403, 4429, 1001...) and reason
// of a refused or ended tunnel.
func (a *api) jsError(err error) js.Value {
	code, reason := 0, ""
	msg := err.Error()
	var oe *tunnel.OpenError
	var ce *CloseError
	var te *client.TunnelClosedError
	switch {
	case errors.As(err, &oe):
		code, reason = int(oe.Status), oe.Message
		msg = "dial " + strconv.Quote(oe.Service) + ": " + oe.Status.String()
		if oe.Message != "" {
			msg += ": " + oe.Message
		}
	case errors.As(err, &ce):
		code, reason = ce.Code, ce.Reason
	case errors.As(err, &te):
		code, reason = int(te.Code), te.Reason
	case errors.Is(err, client.ErrClosed):
		msg = "the gateway connection is closed"
	}
	return a.errorClass.New("ferry: "+msg, code, reason)
}
