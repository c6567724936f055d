//go:build js && wasm

package main

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall/js"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/internal/errwrap"
	"github.com/ferrygw/ferry/tunnel"
)

// maxQueued bounds the bytes received and not yet read by yamux. The
// gateway cannot legitimately come near it: what it may send is bounded by
// yamux's stream windows, and yamux's receive loop reads the queue dry
// after every message event (Go runs every ready goroutine before it
// returns to the event loop). A gateway that ignores windows fails the
// tunnel instead of the page's memory.
const maxQueued = 64 << 20

// CloseError is how a browser WebSocket ended: the close code and reason
// of its close event. Before the tunnel was proven alive, it is the
// gateway's refusal (4401, 4403, 4429) or, with code 1006, a failure the
// browser does not explain (unreachable, refused at the HTTP level...).
type CloseError struct {
	Code   int
	Reason string
	// Opened is true if the WebSocket had opened.
	Opened bool
	// Here is true when this side ended the tunnel with this code (a page
	// cannot send 1011, so it stays here): a keepalive timeout.
	Here bool
}

func (e *CloseError) Error() string {
	switch {
	case !e.Opened && e.Code == 1006:
		return "the WebSocket failed before it opened (the browser does not say why: the gateway may be unreachable, or refused the handshake with an HTTP error)"
	case e.Here:
		return "this side ended the tunnel with " + strconv.Itoa(e.Code) + ": " + e.Reason
	case e.Reason != "":
		return "the tunnel was closed with " + strconv.Itoa(e.Code) + ": " + e.Reason
	}
	return "the tunnel was closed with " + strconv.Itoa(e.Code)
}

// Permanent reports whether retrying cannot help: the gateway refused the
// credential (4401) or forbade the tunnel (4403). The client then stops
// reconnecting.
func (e *CloseError) Permanent() bool { return e.Code == 4401 || e.Code == 4403 }

// wsConn is a net.Conn over a browser WebSocket: reads are the payloads of
// the binary messages received, in order, as one byte stream; writes are
// gathered into whole yamux frames, one binary message each.
//
// Its event handlers never block: a message is copied into Go memory and
// queued. Reads wait on a channel. Writes never wait, since the browser
// queues what send is given; yamux's windows bound that queue as they
// bound the receive queue.
type wsConn struct {
	ws    js.Value
	url   string
	funcs [4]js.Func // the event handlers, released once closed
	frame frameWriter

	// wmu serialises Write (yamux's send loop) with KeepAlive's pings,
	// which go out between two frames.
	wmu         sync.Mutex
	pingPending bool // a ping waits for the frame being written to end

	mu       sync.Mutex
	queue    []payload // payloads not yet read; queue[0] may be partly read
	queued   int       // bytes in queue
	received uint64    // messages received so far
	opened   bool
	closeErr *CloseError // set by the close event
	failed   error       // why this side ended the tunnel, if not by Close
	err      error       // why reads and writes fail; set once
	done     chan struct{}
	ready    chan struct{} // gets a value (capacity 1) when the queue grows
	released chan struct{} // closed once the event handlers are released

	rdl, wdl deadline
}

var _ client.TunnelConn = (*wsConn)(nil)

// liveWebSockets counts the WebSockets whose event handlers are not yet
// released, for stats.
var liveWebSockets atomic.Int64

// errLocalClose is the error of a wsConn that this side closed.
var errLocalClose = errors.New("the tunnel was closed by this side")

// errClosed is what Close returns the second time.
var errClosed = errors.New("use of closed network connection")

// errDeadline is what Read and Write return past their deadlines: a
// timeout, as os.ErrDeadlineExceeded is.
var errDeadline error = deadlineError{}

type deadlineError struct{}

func (deadlineError) Error() string   { return "i/o timeout" }
func (deadlineError) Timeout() bool   { return true }
func (deadlineError) Temporary() bool { return true }

// dialWebSocket opens a WebSocket to url offering protocols, waits until
// the tunnel is proven alive (see the package doc) or has failed, and
// returns it as a net.Conn. ctx bounds the whole.
func dialWebSocket(ctx context.Context, url string, protocols []string) (*wsConn, error) {
	c := &wsConn{url: url, done: make(chan struct{}), ready: make(chan struct{}, 1), released: make(chan struct{})}
	c.rdl.init()
	c.wdl.init()
	ps := make([]any, len(protocols))
	for i, p := range protocols {
		ps[i] = p
	}
	ws, err := newWebSocket(url, ps)
	if err != nil {
		return nil, err
	}
	c.ws = ws
	liveWebSockets.Add(1)
	ws.Set("binaryType", "arraybuffer")
	opened := make(chan struct{})
	c.funcs[0] = js.FuncOf(func(js.Value, []js.Value) any {
		c.mu.Lock()
		c.opened = true
		c.mu.Unlock()
		close(opened)
		return nil
	})
	c.funcs[1] = js.FuncOf(c.onMessage)
	c.funcs[2] = js.FuncOf(c.onClose)
	c.funcs[3] = js.FuncOf(func(js.Value, []js.Value) any { return nil }) // the close event follows, with what is known
	for i, name := range []string{"onopen", "onmessage", "onclose", "onerror"} {
		ws.Set(name, c.funcs[i])
	}
	fail := func(err error) (*wsConn, error) {
		c.Close()
		return nil, err
	}
	// closed is why the WebSocket closed: its close event (a refusal, even
	// one with 1000 or 1001), or what ended it on this side.
	closed := func() (*wsConn, error) {
		if ce := c.closeInfo(); ce != nil {
			return fail(ce)
		}
		return fail(c.err)
	}
	select {
	case <-opened:
	case <-c.done:
		return closed()
	case <-ctx.Done():
		return fail(errwrap.Wrap(ctx.Err(), "connect to "+url))
	}
	c.ping()
	select {
	case <-c.ready:
		c.ready <- struct{}{} // leave the signal for the first Read
	case <-c.done:
		return closed()
	case <-ctx.Done():
		return fail(errwrap.Wrap(ctx.Err(), "connect to "+url+": no answer"))
	}
	if p := ws.Get("protocol").String(); p != tunnel.Subprotocol {
		return fail(errors.New(url + " is not a Ferry gateway: it chose the subprotocol " + strconv.Quote(p) + ", not " + strconv.Quote(tunnel.Subprotocol)))
	}
	return c, nil
}

// newWebSocket runs new WebSocket(url, protocols), turning the exception it
// throws for a bad URL or protocol into an error.
func newWebSocket(url string, protocols []any) (ws js.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			if jerr, ok := r.(js.Error); ok {
				err = errors.New("WebSocket " + url + ": " + jerr.Get("message").String())
				return
			}
			panic(r)
		}
	}()
	return js.Global().Get("WebSocket").New(url, protocols), nil
}

func (c *wsConn) onMessage(_ js.Value, args []js.Value) any {
	data := args[0].Get("data")
	if data.Type() == js.TypeString {
		c.fail("a text message on the tunnel (it carries binary messages only)")
		return nil
	}
	pl := newPayload(data.Get("byteLength").Int())
	js.CopyBytesToGo(pl.b, uint8Array.New(data))
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		pl.free()
		return nil
	}
	c.queue = append(c.queue, pl)
	c.queued += len(pl.b)
	c.received++
	over := c.queued > maxQueued
	c.mu.Unlock()
	if over {
		c.fail("more than " + strconv.Itoa(maxQueued>>20) + " MiB received and not read: the gateway ignores yamux windows")
		return nil
	}
	select {
	case c.ready <- struct{}{}:
	default:
	}
	return nil
}

func (c *wsConn) onClose(_ js.Value, args []js.Value) any {
	ev := args[0]
	c.mu.Lock()
	ce := &CloseError{Code: ev.Get("code").Int(), Reason: ev.Get("reason").String(), Opened: c.opened}
	if c.closeErr == nil {
		c.closeErr = ce
	}
	err := error(ce)
	if ce.Opened && (ce.Code == 1000 || ce.Code == 1001) {
		err = io.EOF
	}
	c.mu.Unlock()
	c.setErr(err)
	// A function may not be released while it runs.
	go c.release()
	return nil
}

// fail ends the tunnel from this side for a violation by the gateway.
// (A page may only close with 1000 or 3000 to 4999, so the reason stays
// here.)
func (c *wsConn) fail(reason string) {
	c.failWith(errors.New("tunnel: " + reason))
}

// failWith ends the tunnel from this side with err, which failure then
// returns.
func (c *wsConn) failWith(err error) {
	c.mu.Lock()
	if c.failed == nil && c.err == nil {
		c.failed = err
	}
	c.mu.Unlock()
	c.setErr(err)
	c.ws.Call("close")
}

// setErr ends reads and writes with err, unless they already ended.
func (c *wsConn) setErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	close(c.done)
}

// release detaches and releases the event handlers once the WebSocket has
// closed.
func (c *wsConn) release() {
	for _, name := range []string{"onopen", "onmessage", "onclose", "onerror"} {
		c.ws.Set(name, js.Null())
	}
	for _, f := range c.funcs {
		f.Release()
	}
	liveWebSockets.Add(-1)
	close(c.released)
}

// closedHere reports whether this side closed the WebSocket (as yamux
// does when keepalives go unanswered) before the gateway did.
func (c *wsConn) closedHere() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == errLocalClose
}

// failure returns why this side ended the tunnel (a keepalive timeout, a
// protocol violation it found, a buffer overflow), or nil when it ended
// otherwise or not yet.
func (c *wsConn) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed
}

// closeInfo returns the close event's code and reason, once it came.
func (c *wsConn) closeInfo() *CloseError {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

func (c *wsConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		c.mu.Lock()
		for len(c.queue) > 0 && len(c.queue[0].b) == 0 {
			c.queue[0].free()
			c.queue[0] = payload{}
			c.queue = c.queue[1:]
		}
		if len(c.queue) > 0 {
			n := copy(p, c.queue[0].b)
			c.queue[0].b = c.queue[0].b[n:]
			c.queued -= n
			c.mu.Unlock()
			return n, nil
		}
		err := c.err
		c.mu.Unlock()
		if err != nil {
			return 0, err
		}
		select {
		case <-c.ready:
		case <-c.done:
		case <-c.rdl.expired():
			return 0, errDeadline
		}
	}
}

// Write gathers yamux frames and sends each whole frame as one binary
// message (docs/PROTOCOL.md, "The byte-stream rule"): yamux writes a
// frame's header and its body with two calls. It is called by yamux's
// send loop only. The frame is built in a JavaScript array as it comes, so
// its bytes are copied once, into the message.
func (c *wsConn) Write(p []byte) (int, error) {
	select {
	case <-c.wdl.expired():
		return 0, errDeadline
	default:
	}
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	f := &c.frame
	n := len(p)
	for len(p) > 0 {
		if f.have < yamuxHeaderSize {
			k := copy(f.hdr[f.have:], p)
			f.have += k
			p = p[k:]
			if f.have < yamuxHeaderSize {
				break
			}
			f.size = yamuxHeaderSize + frameBody(f.hdr[:])
			f.msg = uint8Array.New(f.size)
			js.CopyBytesToJS(f.msg, f.hdr[:])
			f.fill = yamuxHeaderSize
		} else {
			k := min(f.size-f.fill, len(p))
			js.CopyBytesToJS(f.msg.Call("subarray", f.fill, f.fill+k), p[:k])
			f.fill += k
			p = p[k:]
		}
		if f.fill == f.size {
			c.ws.Call("send", f.msg)
			f.have, f.msg = 0, js.Undefined()
			if c.pingPending {
				c.pingPending = false
				c.sendPing()
			}
		}
	}
	return n, nil
}

// The yamux header (yamux spec.md): version, type, flags (2), stream ID
// (4), length (4); a data frame's length counts the body bytes that
// follow.
const (
	yamuxHeaderSize = 12
	yamuxTypeData   = 0
	yamuxTypePing   = 2
	yamuxFlagSYN    = 1
)

func frameBody(hdr []byte) int {
	if hdr[1] != yamuxTypeData {
		return 0
	}
	return int(binary.BigEndian.Uint32(hdr[8:12]))
}

// frameWriter is the yamux frame that Write is building.
type frameWriter struct {
	hdr  [yamuxHeaderSize]byte
	have int      // header bytes in hdr
	msg  js.Value // the message, once the header is whole
	size int      // the message's size
	fill int      // bytes in msg so far
}

// payloadSize is the size of the pooled buffers that messages are copied
// into; yamux frames from the gateway are mostly smaller (its copy buffer
// is 32 KiB). Larger messages get a buffer of their own.
const payloadSize = 64 << 10

var payloads = sync.Pool{New: func() any { b := make([]byte, payloadSize); return &b }}

// payload is a received message, in a pooled buffer when it fits.
type payload struct {
	b    []byte  // what is still to be read
	pool *[]byte // the pooled buffer b is in, or nil
}

func newPayload(n int) payload {
	if n > payloadSize {
		return payload{b: make([]byte, n)}
	}
	bp := payloads.Get().(*[]byte)
	return payload{b: (*bp)[:n], pool: bp}
}

// free returns the buffer to the pool.
func (pl *payload) free() {
	if pl.pool != nil {
		payloads.Put(pl.pool)
		pl.pool = nil
	}
	pl.b = nil
}

// Close closes the WebSocket with 1000; the close event releases the
// handlers.
func (c *wsConn) Close() error {
	c.mu.Lock()
	already := c.err != nil
	c.mu.Unlock()
	c.setErr(errLocalClose)
	if st := c.ws.Get("readyState").Int(); st == 0 || st == 1 { // CONNECTING, OPEN
		c.ws.Call("close", 1000)
	}
	if already {
		return errClosed
	}
	return nil
}

func (c *wsConn) SetDeadline(t time.Time) error {
	c.rdl.set(t)
	c.wdl.set(t)
	return nil
}
func (c *wsConn) SetReadDeadline(t time.Time) error  { c.rdl.set(t); return nil }
func (c *wsConn) SetWriteDeadline(t time.Time) error { c.wdl.set(t); return nil }

// deadline is a settable deadline whose channel is closed when it passes
// (the technique of net.Pipe).
type deadline struct {
	mu    sync.Mutex
	timer *time.Timer
	ch    chan struct{}
}

func (d *deadline) init() { d.ch = make(chan struct{}) }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.ch // the timer closed it: wait no longer
	}
	d.timer = nil
	closed := isClosed(d.ch)
	if t.IsZero() {
		if closed {
			d.ch = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.ch = make(chan struct{})
		}
		ch := d.ch
		d.timer = time.AfterFunc(dur, func() { close(ch) })
		return
	}
	if !closed {
		close(d.ch)
	}
}

func (d *deadline) expired() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

var uint8Array = js.Global().Get("Uint8Array")

// Err says how the tunnel ended, as client.Session asks of its connection:
// 1011 and the keepalive reason when KeepAlive found the gateway dead
// (Local), else the close event's code and reason as a *tunnel.CloseError
// (Local when this side closed first), or nil before the close event. So a close with
// 1001 from a draining gateway makes the page reconnect at once, as the
// native client does.
func (c *wsConn) Err() error {
	var f *CloseError
	if errors.As(c.failure(), &f) { // a keepalive timeout
		return &tunnel.CloseError{Code: tunnel.StatusCode(f.Code), Reason: f.Reason, Local: true}
	}
	ce := c.closeInfo()
	if ce == nil {
		return nil
	}
	return &tunnel.CloseError{Code: tunnel.StatusCode(ce.Code), Reason: ce.Reason, Local: c.closedHere()}
}
