// Command wsecho is a WebSocket echo server and checker built on tunnel.
//
//	go run ./tests/wsecho -serve 127.0.0.1:9001   # echo every message at /
//	go run ./tests/wsecho -dial ws://127.0.0.1:9001/
//
// The checker round-trips text and binary messages of sizes 0 to 16 MiB,
// whole and fragmented, with pings, and exits non-zero on any mismatch.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ferrygw/ferry/compress"
	"github.com/ferrygw/ferry/tunnel"
)

func main() {
	serve := flag.String("serve", "", "listen on `ADDR` and echo every message at /")
	dial := flag.String("dial", "", "check the echo server at `URL`")
	max := flag.Int("max", 16<<20, "largest message the checker sends, in bytes")
	deflate := flag.Bool("deflate", true, "negotiate permessage-deflate (server: accept it; checker: offer it)")
	flag.Parse()
	switch {
	case *serve != "":
		if err := runServer(*serve, *deflate); err != nil {
			log.Fatal(err)
		}
	case *dial != "":
		if err := check(*dial, *max, *deflate); err != nil {
			fmt.Fprintln(os.Stderr, "wsecho:", err)
			os.Exit(1)
		}
		fmt.Println("wsecho: all round trips matched")
	default:
		flag.Usage()
		os.Exit(2)
	}
}

func runServer(addr string, deflate bool) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Printf("wsecho: serving ws://%s/\n", ln.Addr())
	opts := &tunnel.AcceptOptions{ReadLimit: 64 << 20}
	if deflate {
		opts.Compression = &compress.Options{}
	}
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		echo(w, r, opts)
	}))
}

func echo(w http.ResponseWriter, r *http.Request, opts *tunnel.AcceptOptions) {
	c, err := tunnel.Accept(w, r, opts)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := context.Background()
	var buf []byte
	for {
		typ, msg, err := c.ReadAppend(ctx, buf[:0])
		if err != nil {
			if tunnel.CloseStatus(err) == 0 {
				log.Printf("wsecho: %v", err)
			}
			return
		}
		buf = msg
		if err := c.Write(ctx, typ, msg); err != nil {
			return
		}
	}
}

func check(url string, max int, deflate bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := &tunnel.DialOptions{ReadLimit: int64(max) + 1}
	if deflate {
		opts.Compression = &compress.Options{}
	}
	c, _, err := tunnel.Dial(ctx, url, opts)
	if err != nil {
		return err
	}
	if p, ok := c.Compression(); ok {
		fmt.Printf("wsecho: negotiated %s\n", p)
	} else {
		fmt.Println("wsecho: no compression")
	}
	readErr := make(chan error, 1)
	type msg struct {
		typ  tunnel.MessageType
		data []byte
	}
	got := make(chan msg, 1)
	go func() {
		for {
			typ, data, err := c.Read(ctx)
			if err != nil {
				readErr <- err
				return
			}
			got <- msg{typ, data}
		}
	}()
	sizes := []int{0, 1, 125, 126, 127, 65535, 65536, 1 << 20, max}
	for _, size := range sizes {
		if size > max {
			continue
		}
		for _, typ := range []tunnel.MessageType{tunnel.MessageText, tunnel.MessageBinary} {
			for _, fragmented := range []bool{false, true} {
				want := payload(typ, size)
				if fragmented {
					w, err := c.Writer(ctx, typ)
					if err != nil {
						return err
					}
					for p := want; len(p) > 0; {
						// Cuts fall inside runes too: the peer must
						// validate UTF-8 across fragments.
						n := min(len(p), 1+len(p)/3)
						if _, err := w.Write(p[:n]); err != nil {
							return err
						}
						p = p[n:]
					}
					if err := w.Close(); err != nil {
						return err
					}
				} else if err := c.Write(ctx, typ, want); err != nil {
					return err
				}
				if err := c.Ping(ctx); err != nil {
					return fmt.Errorf("ping: %w", err)
				}
				select {
				case m := <-got:
					if m.typ != typ || !bytes.Equal(m.data, want) {
						return fmt.Errorf("%v message of %d bytes (fragmented %v) came back as %v of %d bytes, different", typ, size, fragmented, m.typ, len(m.data))
					}
				case err := <-readErr:
					return err
				}
			}
		}
		fmt.Printf("wsecho: %d bytes ok\n", size)
	}
	if err := c.Close(tunnel.StatusNormalClosure, "done"); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	err = <-readErr
	if tunnel.CloseStatus(err) != tunnel.StatusNormalClosure && !errors.Is(err, io.EOF) {
		return fmt.Errorf("after close: %w", err)
	}
	return nil
}

func payload(typ tunnel.MessageType, n int) []byte {
	if typ == tunnel.MessageText {
		b := []byte(strings.Repeat("ferry-τ ", n/9+1))[:n]
		for i := len(b) - 1; i >= 0 && i >= len(b)-3; i-- {
			if !utf8.RuneStart(b[i]) {
				continue
			}
			if !utf8.FullRune(b[i:]) {
				for j := i; j < len(b); j++ {
					b[j] = ' '
				}
			}
			break
		}
		return b
	}
	b := make([]byte, n)
	rand.Read(b)
	return b
}
