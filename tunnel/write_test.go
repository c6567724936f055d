package tunnel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ferrygw/ferry/compress"
)

// TestCompressedWriteCancelled: with context takeover, a compressed write
// whose context ends while another frame holds the connection's frame lock
// must not leave the compressor's history ahead of what the peer got.
// Either the connection is closed with a *CloseError (a message could not
// be finished), or it stays in step and the next message arrives
// byte-exact. Before the fix, the compressor ran before the lock was
// taken, Write returned the context's error on an open connection, and the
// retry inflated to wrong bytes or failed with 1007.
func TestCompressedWriteCancelled(t *testing.T) {
	t.Parallel()
	var text bytes.Buffer
	for i := 0; text.Len() < 40000; i++ {
		fmt.Fprintf(&text, `{"id":%d,"op":"GET","key":"session:%d","ok":true}`+"\n", i, i%89)
	}
	prime, msg := text.Bytes()[:20000], text.Bytes()[20000:28000]
	tests := []struct {
		name string
		// write makes the write that fails, while the test holds frameMu.
		write func(t *testing.T, c *Conn)
		// open: nothing reached the wire or the history, so the
		// connection stays usable (the lock is taken before compressing).
		open bool
	}{
		{"Write", func(t *testing.T, c *Conn) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			if err := c.Write(ctx, MessageBinary, msg); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Write = %v, want the context's error", err)
			}
		}, true},
		{"Writer, first fragment", func(t *testing.T, c *Conn) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			w, err := c.Writer(ctx, MessageBinary)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(msg); err == nil {
				t.Error("Write succeeded with the frame lock held")
			}
			if err := w.Close(); err == nil {
				t.Error("Close succeeded with the frame lock held")
			}
		}, true},
		{"Writer, held by the compressor", func(t *testing.T, c *Conn) {
			ctx, cancel := context.WithCancel(context.Background())
			w, err := c.Writer(ctx, MessageBinary)
			if err != nil {
				t.Fatal(err)
			}
			// A small piece stays in the compressor; nothing goes out,
			// but the history moved.
			c.frameMu.release()
			if _, err := w.Write(msg[:300]); err != nil {
				t.Errorf("Write: %v", err)
			}
			if err := c.frameMu.acquire(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			cancel()
			if err := w.Close(); err == nil {
				t.Error("Close succeeded with the frame lock held")
			}
		}, false},
		{"Writer, after a fragment", func(t *testing.T, c *Conn) {
			ctx, cancel := context.WithCancel(context.Background())
			w, err := c.Writer(ctx, MessageBinary)
			if err != nil {
				t.Fatal(err)
			}
			c.frameMu.release() // let the first fragment out
			if _, err := w.Write(msg[:4000]); err != nil {
				t.Errorf("first Write: %v", err)
			}
			if err := c.frameMu.acquire(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			cancel()
			if _, err := w.Write(msg[4000:]); err == nil {
				t.Error("second Write succeeded with the frame lock held")
			}
			if err := w.Close(); err == nil {
				t.Error("Close succeeded with the frame lock held")
			}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client, server := dialPair(t)
			client.enableCompression(compress.Params{}, compress.Options{})
			server.enableCompression(compress.Params{}, compress.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got := make(chan []byte, 4)
			go func() {
				defer close(got)
				for {
					_, p, err := server.Read(ctx)
					if err != nil {
						return
					}
					got <- p
				}
			}()
			if err := client.Write(ctx, MessageBinary, prime); err != nil {
				t.Fatal(err)
			}
			if p := <-got; !bytes.Equal(p, prime) {
				t.Fatalf("first message: %d bytes", len(p))
			}
			// Another frame holds the lock, as a stuck write or a control
			// frame would.
			if err := client.frameMu.acquire(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			tt.write(t, client)
			client.frameMu.release()
			select {
			case <-client.Done():
				var ce *CloseError
				if !errors.As(client.Err(), &ce) {
					t.Fatalf("closed with %v, want a *CloseError", client.Err())
				}
				if tt.open {
					t.Fatalf("closed (%v), but nothing had reached the wire", ce)
				}
				return
			default:
			}
			if !tt.open {
				t.Fatal("still open after a message it could not finish")
			}
			if err := client.Write(ctx, MessageBinary, msg); err != nil {
				t.Fatalf("retry: %v", err)
			}
			p, ok := <-got
			if !ok {
				t.Fatalf("server: %v", server.Err())
			}
			if !bytes.Equal(p, msg) {
				t.Fatalf("retry arrived as %d different bytes, want %d", len(p), len(msg))
			}
		})
	}
}
