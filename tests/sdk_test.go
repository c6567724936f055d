package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/framing"
	"github.com/ferrygw/ferry/gateway"
	"github.com/ferrygw/ferry/gateway/config"
	"github.com/ferrygw/ferry/tests/sdk"
)

// TestSDKTypes checks the TypeScript SDK generated from
// gen/testdata/sdk.toml (the golden files in gen/testdata/ts, which
// gen's tests keep current) with tsc --strict against a program that uses
// every method (testdata/sdk_usage.ts); its @ts-expect-error lines must
// stay errors.
func TestSDKTypes(t *testing.T) {
	t.Parallel()
	typescriptPeer.require(t)
	runTSC(t, "sdk_usage.ts", map[string]string{
		"../gen/testdata/ts/ferry-sdk.js":   "ferry-sdk.js",
		"../gen/testdata/ts/ferry-sdk.d.ts": "ferry-sdk.d.ts",
		"../gen/testdata/ts/ferry.d.ts":     "ferry.d.ts",
		"testdata/sdk_usage.ts":             "sdk_usage.ts",
	})
}

// TestGoSDK runs the Go SDK generated from gen/testdata/sdk.toml
// (tests/sdk, compiled into this test) against a live gateway with that
// config: a raw service by SHA-256, a lines service and a u32be service
// with messages of 0 bytes, 1 byte, exactly max_message and one over it,
// concurrently on one Client.
func TestGoSDK(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("../gen/testdata/sdk.toml")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	url := serveGateway(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	api, err := sdk.Connect(ctx, url, &client.Options{Token: "sdk-test-token"})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Add(3)
	go func() { // raw: 8 MiB there and back, by hash
		defer wg.Done()
		errs <- func() error {
			c, err := api.Echo(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			data := make([]byte, 8<<20)
			rand.Read(data)
			go func() {
				c.Write(data)
				c.(interface{ CloseWrite() error }).CloseWrite()
			}()
			got, err := io.ReadAll(c)
			if err != nil {
				return err
			}
			if sha256.Sum256(got) != sha256.Sum256(data) {
				return errors.New("echo: the bytes back differ")
			}
			return nil
		}()
	}()
	go func() { // lines, max 64 KiB
		defer wg.Done()
		errs <- func() error {
			ch, err := api.Chat(ctx)
			if err != nil {
				return err
			}
			defer ch.Close()
			max := 64 << 10
			for _, msg := range []string{"", "a", strings.Repeat("é", max/2)} {
				if err := ch.Send(ctx, msg); err != nil {
					return err
				}
				got, err := ch.Recv(ctx)
				if err != nil || got != msg {
					return errors.New("chat: a message came back changed: " + errString(err))
				}
			}
			if err := ch.Send(ctx, strings.Repeat("x", max+1)); !errors.Is(err, framing.ErrTooLarge) {
				return errors.New("chat: a message over max_message was sent: " + errString(err))
			}
			// The echo sends one over max back: Recv fails cleanly.
			raw, err := api.Dial(ctx, "chat")
			if err != nil {
				return err
			}
			over := framing.NewLines(raw, max)
			raw.Write([]byte(strings.Repeat("y", max+1) + "\n"))
			if _, err := over.Recv(ctx); !errors.Is(err, framing.ErrTooLarge) {
				return errors.New("chat: a received message over max_message: " + errString(err))
			}
			return nil
		}()
	}()
	go func() { // u32be, max 1 KiB
		defer wg.Done()
		errs <- func() error {
			ch, err := api.FramesU32(ctx)
			if err != nil {
				return err
			}
			defer ch.Close()
			for _, n := range []int{0, 1, 1024} {
				msg := bytes.Repeat([]byte{byte(n)}, n)
				if err := ch.Send(ctx, msg); err != nil {
					return err
				}
				got, err := ch.Recv(ctx)
				if err != nil || !bytes.Equal(got, msg) {
					return errors.New("frames: a message came back changed: " + errString(err))
				}
			}
			if err := ch.Send(ctx, make([]byte, 1025)); !errors.Is(err, framing.ErrTooLarge) {
				return errors.New("frames: a message over max_message was sent: " + errString(err))
			}
			raw, err := api.Dial(ctx, "frames_u32")
			if err != nil {
				return err
			}
			over := framing.NewU32BE(raw, 1024)
			raw.Write([]byte{0, 0, 4, 1})
			if _, err := over.Recv(ctx); !errors.Is(err, framing.ErrTooLarge) {
				return errors.New("frames: a received length over max_message: " + errString(err))
			}
			return nil
		}()
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// serveGateway serves srv on a loopback port until the test ends and
// returns its tunnel URL.
func serveGateway(t *testing.T, srv *gateway.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return "ws://" + ln.Addr().String() + "/tunnel"
}
