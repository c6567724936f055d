package tunnel

import (
	"context"
	"testing"
)

// TestWireBytes: each side counts the frames it wrote and read, headers
// included, for every length form and masking.
func TestWireBytes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload int
		header  int64 // server to client (unmasked); client to server adds 4
	}{
		{"empty", 0, 2},
		{"small", 125, 2},
		{"16-bit length", 126, 4},
		{"64-bit length", 70000, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := tcpPair(t)
			server := newConn(a, nil, false, "", 1<<20)
			client := newConn(b, nil, true, "", 1<<20)
			t.Cleanup(func() { server.CloseNow(); client.CloseNow() })
			ctx := context.Background()
			msg := make([]byte, tc.payload)
			errc := make(chan error, 1)
			go func() { errc <- client.Write(ctx, MessageBinary, msg) }()
			if _, _, err := server.Read(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			go func() { errc <- server.Write(ctx, MessageBinary, msg) }()
			if _, _, err := client.Read(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			up := tc.header + 4 + int64(tc.payload)
			down := tc.header + int64(tc.payload)
			sin, sout := server.WireBytes()
			cin, cout := client.WireBytes()
			if sin != up || cout != up || sout != down || cin != down {
				t.Fatalf("server in %d out %d, client in %d out %d; want up %d down %d", sin, sout, cin, cout, up, down)
			}
		})
	}
}
