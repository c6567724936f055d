package framing

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestU32BERecv(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("b", 100000)
	cases := []struct {
		name     string
		max      int
		in       []byte
		want     []string
		err      error // after want; io.EOF compares with ==
		keepOpen bool  // the peer sends in and waits
	}{
		{"empty stream", 5, nil, nil, io.EOF, false},
		{"0 bytes", 5, u32(""), []string{""}, io.EOF, false},
		{"1 byte", 5, u32("x"), []string{"x"}, io.EOF, false},
		{"exactly max", 5, u32("abcde"), []string{"abcde"}, io.EOF, false},
		{"max+1", 5, u32("abcdef"), nil, ErrTooLarge, false},
		{"max+1, body never sent", 5, u32("abcdef")[:4], nil, ErrTooLarge, true},
		{"largest length", 5, []byte{0xff, 0xff, 0xff, 0xff}, nil, ErrTooLarge, true},
		{"several", 5, u32("ab", "", "z", "abcde"), []string{"ab", "", "z", "abcde"}, io.EOF, false},
		{"not UTF-8", 5, u32("\xff\x00\n"), []string{"\xff\x00\n"}, io.EOF, false},
		{"messages before too large", 5, u32("one", "toolong", "never"), []string{"one"}, ErrTooLarge, false},
		{"1 header byte", 5, []byte{0}, nil, io.ErrUnexpectedEOF, false},
		{"3 header bytes", 5, []byte{0, 0, 0}, nil, io.ErrUnexpectedEOF, false},
		{"header only", 5, u32("abc")[:4], nil, io.ErrUnexpectedEOF, false},
		{"mid-body", 5, u32("abc")[:6], nil, io.ErrUnexpectedEOF, false},
		{"mid-header after a message", 5, append(u32("a"), 0, 0), []string{"a"}, io.ErrUnexpectedEOF, false},
		{"max 1", 1, u32("x", ""), []string{"x", ""}, io.EOF, false},
		{"max 1, 2 bytes", 1, u32("xy"), nil, ErrTooLarge, false},
		{"large", 100000, u32(big[:70000], big, "c"), []string{big[:70000], big, "c"}, io.EOF, false},
		{"large, mid-body", 100000, u32(big)[:50000], nil, io.ErrUnexpectedEOF, false},
	}
	for _, tr := range transports {
		for _, tc := range cases {
			t.Run(tr.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				a, b := tr.pair(t)
				wait := writeAndClose(b, tc.in, tc.keepOpen)
				defer wait()
				u := NewU32BE(a, tc.max)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				var got []string
				var err error
				for {
					var msg []byte
					if msg, err = u.Recv(ctx); err != nil {
						break
					}
					if msg == nil {
						t.Error("nil message")
					}
					got = append(got, string(msg))
				}
				if !equalStrings(got, tc.want) {
					t.Errorf("messages %.40q, want %.40q", got, tc.want)
				}
				checkEnd(t, err, tc.err)
				if _, again := u.Recv(ctx); again != err {
					t.Errorf("Recv after %v: %v", err, again)
				}
				if tc.err != io.EOF {
					if _, werr := u.Conn().Write([]byte("x")); !isClosedErr(werr) {
						t.Errorf("conn not closed after %v: Write: %v", err, werr)
					}
				}
			})
		}
	}
}

func TestU32BERecvErrorText(t *testing.T) {
	t.Parallel()
	cases := []struct {
		max  int
		in   []byte
		want string
	}{
		{1048576, u32(strings.Repeat("x", 1048577))[:4], "framing: received message of 1048577 bytes is over max_message (1048576)"},
		{5, []byte{0xff, 0xff, 0xff, 0xff}, "framing: received message of 4294967295 bytes is over max_message (5)"},
		{5, []byte{0, 0}, "framing: stream ended 2 bytes into a 4-byte message header: unexpected EOF"},
		{5, u32("abcd")[:6], "framing: stream ended 2 bytes into a message of 4 bytes: unexpected EOF"},
	}
	for _, tc := range cases {
		u := NewU32BE(&fakeConn{r: bytes.NewReader(tc.in)}, tc.max)
		if _, err := u.Recv(context.Background()); err == nil || err.Error() != tc.want {
			t.Errorf("max %d, % x: %v, want %s", tc.max, tc.in, err, tc.want)
		}
	}
}

// TestU32BERecvAnnouncedOnly checks that a body is allocated as it
// arrives: a peer that announces 4 GiB and sends 100 KB costs little.
func TestU32BERecvAnnouncedOnly(t *testing.T) {
	if strconv.IntSize < 64 {
		t.Skip("max 1<<32-1 needs 64-bit ints")
	}
	in := append([]byte{0xff, 0xff, 0xff, 0xff}, make([]byte, 100000)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	u := NewU32BE(&fakeConn{r: bytes.NewReader(in)}, math.MaxUint32)
	_, err := u.Recv(context.Background())
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Recv: %v, want io.ErrUnexpectedEOF", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 8<<20 {
		t.Errorf("allocated %d bytes", n)
	}
}

func TestU32BESend(t *testing.T) {
	t.Parallel()
	const max = 1 << 20
	large := bytes.Repeat([]byte("L"), 100000)
	small := bytes.Repeat([]byte("s"), writeCopyMax-4)
	cases := []struct {
		name   string
		msg    []byte
		err    error
		writes int // the number of Writes, if no error
	}{
		{"nil", nil, nil, 1},
		{"0 bytes", []byte{}, nil, 1},
		{"1 byte", []byte{0}, nil, 1},
		{"largest in one Write", small, nil, 1},
		{"large", large, nil, 2},
		{"exactly max", make([]byte, max), nil, 2},
		{"max+1", make([]byte, max+1), ErrTooLarge, 0},
	}
	a, b := tcpPair(t)
	rc := &recConn{Conn: a}
	u := NewU32BE(rc, max)
	wait := readAll(b)
	var want []byte
	for _, tc := range cases {
		err := u.Send(context.Background(), tc.msg)
		writes := rc.takeWrites()
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
			}
			if len(writes) != 0 {
				t.Errorf("%s: %d writes", tc.name, len(writes))
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		enc := u32(string(tc.msg))
		if len(writes) != tc.writes || !bytes.Equal(bytes.Join(writes, nil), enc) {
			t.Errorf("%s: %d writes of %d bytes, want %d of %d", tc.name, len(writes), len(bytes.Join(writes, nil)), tc.writes, len(enc))
		}
		want = append(want, enc...)
	}
	err := u.Send(context.Background(), make([]byte, max+1))
	if want := "framing: message of 1048577 bytes is over max_message (1048576)"; err == nil || err.Error() != want {
		t.Errorf("Send: %v, want %s", err, want)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	if got := wait(); !bytes.Equal(got, want) {
		t.Errorf("peer got %d bytes, want %d", len(got), len(want))
	}
}
