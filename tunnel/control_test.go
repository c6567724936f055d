package tunnel

import (
	"context"
	"errors"
	"testing"
	"time"
)

// stuckWriter has client write a message that server never reads, until
// the client's frame lock is held by a write stuck on TCP. It returns a
// channel closed when that write ends.
func stuckWriter(t *testing.T, client *Conn) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	big := make([]byte, 64<<20)
	go func() {
		defer close(done)
		_ = client.Write(context.Background(), MessageBinary, big)
	}()
	t.Cleanup(func() { client.CloseNow(); <-done })
	return done
}

// TestPongBounded: a ping that arrives while our writer is stuck on a peer
// that does not read must neither hold a Read past its context nor wait
// without bound. Before the fix the pong was written with
// context.Background() and Read blocked for as long as the write did.
func TestPongBounded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		ctx     time.Duration // the Read's context; 0 for none
		wantCtx bool          // Read returns the context's error (which, as for any read, ends the conn)
	}{
		{"read context ends first", 300 * time.Millisecond, true},
		{"no read context", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client, server := dialPair(t)
			stuckWriter(t, client)
			// Wait until the client's writer holds the frame lock.
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
				err := client.frameMu.acquire(ctx, nil)
				cancel()
				if err != nil {
					break
				}
				client.frameMu.release()
			}
			if err := server.writeControl(context.Background(), OpPing, []byte("are you there")); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if tt.ctx > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctx)
				defer cancel()
			}
			res := make(chan error, 1)
			start := time.Now()
			go func() { _, _, err := client.Read(ctx); res <- err }()
			var err error
			select {
			case err = <-res:
			case <-time.After(closeTimeout + 5*time.Second):
				t.Fatal("Read still blocked behind the stuck writer")
			}
			took := time.Since(start)
			if tt.wantCtx {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Read = %v, want the context's error", err)
				}
				if took > closeTimeout {
					t.Fatalf("Read took %v past its %v context", took, tt.ctx)
				}
				return
			}
			var ce *CloseError
			if !errors.As(err, &ce) || ce.Code != StatusAbnormalClosure || !ce.Local {
				t.Fatalf("Read = %v, want a local 1006 for the pong that could not go out", err)
			}
		})
	}
}

// TestMuxViewCloseCode: the byte stream handed to yamux leaves the close
// code to the owner of the WebSocket. Before the fix its Close sent 1000
// with no reason, the code of a normal end, whatever had happened.
func TestMuxViewCloseCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		owner      StatusCode // the owner closes first with this; 0 for not
		wantCode   StatusCode
		wantReason string
	}{
		{"yamux ends first", 0, StatusInternalError, MuxEndedReason},
		{"owner closes first", StatusGoingAway, StatusGoingAway, "shutting down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client, server := dialPair(t)
			got := make(chan error, 1)
			go func() {
				_, _, err := client.Read(context.Background())
				got <- err
			}()
			if tt.owner != 0 {
				server.CloseWithin(tt.owner, "shutting down", time.Second)
			}
			if err := server.StreamConn().Close(); err != nil {
				t.Fatal(err)
			}
			err := <-got
			var ce *CloseError
			if !errors.As(err, &ce) || ce.Code != tt.wantCode || ce.Reason != tt.wantReason {
				t.Fatalf("client saw %v, want %d %q", err, tt.wantCode, tt.wantReason)
			}
		})
	}
}
