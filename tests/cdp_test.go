//go:build linux

package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cdpBrowser is headless Chromium driven over the DevTools protocol on a
// pipe (--remote-debugging-pipe: it reads commands from its fd 3 and
// writes answers and events to its fd 4, each a JSON object ended by a
// NUL byte). The tests open a page of the gateway, so that the page's
// origin is the gateway's, and run JavaScript in it (cdpPage.eval),
// getting back what it returns.
type cdpBrowser struct {
	t      *testing.T
	stderr *syncBuffer
	exited chan struct{}
	w      *os.File // our end of the browser's fd 3

	wmu sync.Mutex // serialises writes to w

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan cdpMessage
	events  map[string][]chan cdpMessage // by session ID + "/" + method
	readErr error
}

// cdpMessage is an answer or an event.
type cdpMessage struct {
	ID        int64           `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// startCDPBrowser runs headless Chromium with a fresh profile, HOME and
// TMPDIR in a temporary folder, and the DevTools protocol on a pipe, with
// the flags extra besides its own. When the test ends it stops the browser
// as startChromium does: SIGTERM, then SIGKILL for every process of its
// group or that names its folder, and waits until none runs.
func startCDPBrowser(t *testing.T, extra ...string) *cdpBrowser {
	t.Helper()
	chromiumPeer.require(t)
	dir := t.TempDir()
	for _, d := range []string{"profile", "home", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// The browser reads its fd 3 and writes its fd 4.
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	evR, evW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--disable-quic", "--disable-extensions",
		// Pages in background tabs must not be throttled: the tests wait
		// on timers and network events.
		"--disable-background-timer-throttling", "--disable-renderer-backgrounding",
		"--disable-backgrounding-occluded-windows", "--disable-features=BackForwardCache",
		"--remote-debugging-pipe",
		"--user-data-dir=" + filepath.Join(dir, "profile"),
	}
	args = append(append(args, extra...), "about:blank")
	cmd := exec.Command(chromiumPath, args...)
	cmd.Env = append(os.Environ(),
		"HOME="+filepath.Join(dir, "home"),
		"TMPDIR="+filepath.Join(dir, "tmp"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "home", ".config"),
		"XDG_CACHE_HOME="+filepath.Join(dir, "home", ".cache"),
	)
	cmd.ExtraFiles = []*os.File{cmdR, evW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	b := &cdpBrowser{
		t: t, stderr: &syncBuffer{}, exited: make(chan struct{}), w: cmdW,
		pending: map[int64]chan cdpMessage{}, events: map[string][]chan cdpMessage{},
	}
	cmd.Stdout = b.stderr
	cmd.Stderr = b.stderr
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	cmdR.Close()
	evW.Close()
	pgid := cmd.Process.Pid
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(b.exited)
	}()
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		b.readLoop(evR)
	}()
	t.Cleanup(func() {
		cmdW.Close()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.exited:
		case <-time.After(5 * time.Second):
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			left := browserProcesses(pgid, dir)
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			if len(left) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("chromium processes %v still run after SIGKILL", left)
				break
			}
			// Wait for the kernel to end them before looking again.
			time.Sleep(10 * time.Millisecond)
		}
		<-b.exited
		evR.Close()
		<-readDone
		if t.Failed() {
			t.Logf("chromium (%v) output:\n%s", waitErr, b.stderr)
		}
	})
	return b
}

// readLoop dispatches the browser's messages until the pipe ends.
func (b *cdpBrowser) readLoop(r *os.File) {
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		line, err := br.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			b.readErr = fmt.Errorf("the DevTools pipe ended: %w", err)
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			for k, chs := range b.events {
				for _, ch := range chs {
					close(ch)
				}
				delete(b.events, k)
			}
			b.mu.Unlock()
			return
		}
		var m cdpMessage
		if err := json.Unmarshal(line[:len(line)-1], &m); err != nil {
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch := b.pending[m.ID]; ch != nil {
				delete(b.pending, m.ID)
				ch <- m
			}
		} else {
			for _, ch := range b.events[m.SessionID+"/"+m.Method] {
				select {
				case ch <- m:
				default: // a subscriber that does not keep up misses events
				}
			}
		}
		b.mu.Unlock()
	}
}

// call sends a command (to a page's session, unless sessionID is "") and
// returns its result.
func (b *cdpBrowser) call(ctx context.Context, sessionID, method string, params any) (json.RawMessage, error) {
	ch := make(chan cdpMessage, 1)
	b.mu.Lock()
	if b.readErr != nil {
		b.mu.Unlock()
		return nil, b.readErr
	}
	b.nextID++
	id := b.nextID
	b.pending[id] = ch
	b.mu.Unlock()
	m := map[string]any{"id": id, "method": method, "params": params}
	if sessionID != "" {
		m["sessionId"] = sessionID
	}
	msg, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	b.wmu.Lock()
	_, err = b.w.Write(append(msg, 0))
	b.wmu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("%s: %w", method, b.err())
		}
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		return m.Result, nil
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

func (b *cdpBrowser) err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.readErr
}

// subscribe returns a channel of a session's events of one method; the
// caller must unsubscribe.
func (b *cdpBrowser) subscribe(sessionID, method string) (<-chan cdpMessage, func()) {
	ch := make(chan cdpMessage, 256)
	key := sessionID + "/" + method
	b.mu.Lock()
	b.events[key] = append(b.events[key], ch)
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		chs := b.events[key]
		for i, c := range chs {
			if c == ch {
				b.events[key] = append(chs[:i], chs[i+1:]...)
				break
			}
		}
	}
}

// cdpPage is one tab.
type cdpPage struct {
	b         *cdpBrowser
	sessionID string
	console   *syncBuffer // console messages and uncaught exceptions
}

// openPage opens url in a new tab and returns once its load event fired.
func (b *cdpBrowser) openPage(ctx context.Context, url string) (*cdpPage, error) {
	res, err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"})
	if err != nil {
		return nil, err
	}
	var target struct{ TargetID string }
	if err := json.Unmarshal(res, &target); err != nil {
		return nil, err
	}
	res, err = b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true})
	if err != nil {
		return nil, err
	}
	var att struct{ SessionID string }
	if err := json.Unmarshal(res, &att); err != nil {
		return nil, err
	}
	p := &cdpPage{b: b, sessionID: att.SessionID, console: &syncBuffer{}}
	consoleCh, unsubConsole := b.subscribe(p.sessionID, "Runtime.consoleAPICalled")
	exceptionCh, unsubException := b.subscribe(p.sessionID, "Runtime.exceptionThrown")
	go func() {
		defer unsubConsole()
		defer unsubException()
		for {
			select {
			case m, ok := <-consoleCh:
				if !ok {
					return
				}
				var ev struct {
					Type string
					Args []struct {
						Value       any
						Description string
					}
				}
				_ = json.Unmarshal(m.Params, &ev)
				line := "console." + ev.Type + ":"
				for _, a := range ev.Args {
					if a.Value != nil {
						line += fmt.Sprintf(" %v", a.Value)
					} else {
						line += " " + a.Description
					}
				}
				fmt.Fprintln(p.console, line)
			case m, ok := <-exceptionCh:
				if !ok {
					return
				}
				fmt.Fprintf(p.console, "uncaught: %s\n", m.Params)
			case <-b.exited:
				return
			}
		}
	}()
	for _, m := range []string{"Page.enable", "Runtime.enable"} {
		if _, err := b.call(ctx, p.sessionID, m, map[string]any{}); err != nil {
			return nil, err
		}
	}
	if err := p.navigate(ctx, url); err != nil {
		return nil, err
	}
	return p, nil
}

// navigate loads url in the page and returns once its load event fired.
func (p *cdpPage) navigate(ctx context.Context, url string) error {
	loaded, unsub := p.b.subscribe(p.sessionID, "Page.loadEventFired")
	defer unsub()
	if _, err := p.b.call(ctx, p.sessionID, "Page.navigate", map[string]any{"url": url}); err != nil {
		return err
	}
	select {
	case _, ok := <-loaded:
		if !ok {
			return p.b.err()
		}
	case <-ctx.Done():
		return fmt.Errorf("loading %s: %w", url, ctx.Err())
	}
	return nil
}

// eval runs a JavaScript expression in the page, awaits it if it is a
// Promise, and unmarshals its value (JSON-serialisable) into out, if out
// is not nil. A thrown exception is an error with its text.
func (p *cdpPage) eval(ctx context.Context, expr string, out any) error {
	res, err := p.b.call(ctx, p.sessionID, "Runtime.evaluate", map[string]any{
		"expression": expr, "awaitPromise": true, "returnByValue": true,
	})
	if err != nil {
		return err
	}
	var r struct {
		Result struct {
			Type  string
			Value json.RawMessage
		}
		ExceptionDetails *struct {
			Text      string
			Exception struct{ Description string }
		}
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return err
	}
	if d := r.ExceptionDetails; d != nil {
		if d.Exception.Description != "" {
			return errors.New(d.Exception.Description)
		}
		return errors.New(d.Text)
	}
	if out == nil {
		return nil
	}
	if len(r.Result.Value) == 0 {
		return fmt.Errorf("the expression gave %s, no value", r.Result.Type)
	}
	return json.Unmarshal(r.Result.Value, out)
}
