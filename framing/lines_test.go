package framing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

func TestLinesRecv(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 10000)
	cases := []struct {
		name string
		max  int
		in   string
		want []string
		err  error // after want; io.EOF compares with ==
	}{
		{"empty stream", 5, "", nil, io.EOF},
		{"0 bytes", 5, "\n", []string{""}, io.EOF},
		{"1 byte", 5, "a\n", []string{"a"}, io.EOF},
		{"exactly max", 5, "abcde\n", []string{"abcde"}, io.EOF},
		{"max+1", 5, "abcdef\n", nil, ErrTooLarge},
		{"max then CRLF", 5, "abcde\r\n", []string{"abcde"}, io.EOF},
		{"max+1 then CRLF", 5, "abcdef\r\n", nil, ErrTooLarge},
		{"CRLF", 5, "a\r\n", []string{"a"}, io.EOF},
		{"CRLF alone", 5, "\r\n", []string{""}, io.EOF},
		{"one CR stripped", 5, "a\r\r\n", []string{"a\r"}, io.EOF},
		{"kept CR counts", 5, "abcde\r\r\n", nil, ErrTooLarge},
		{"CR inside", 5, "a\rb\n", []string{"a\rb"}, io.EOF},
		{"final line", 5, "a\nbc", []string{"a", "bc"}, io.EOF},
		{"final line only", 5, "abc", []string{"abc"}, io.EOF},
		{"final line keeps CR", 5, "abc\r", []string{"abc\r"}, io.EOF},
		{"final CR alone", 5, "\r", []string{"\r"}, io.EOF},
		{"final line of max", 5, "abcde", []string{"abcde"}, io.EOF},
		{"final line over max", 5, "abcdef", nil, ErrTooLarge},
		{"final line over max by its CR", 5, "abcde\r", nil, ErrTooLarge},
		{"empty lines", 5, "a\n\n\nb\n", []string{"a", "", "", "b"}, io.EOF},
		{"messages before too large", 5, "one\ntoolong\nnever\n", []string{"one"}, ErrTooLarge},
		{"max 1", 1, "x\n", []string{"x"}, io.EOF},
		{"max 1, 2 bytes", 1, "xy\n", nil, ErrTooLarge},
		{"max 1, CRLF", 1, "x\r\n", []string{"x"}, io.EOF},
		{"max 1, CR CRLF", 1, "x\r\r\n", nil, ErrTooLarge},
		{"2-byte rune", 5, "é\n", []string{"é"}, io.EOF},
		{"max in runes", 6, "日本\n", []string{"日本"}, io.EOF},
		{"invalid byte", 5, "\xff\n", nil, ErrInvalidUTF8},
		{"invalid after good", 5, "ok\n\xc3(\n", []string{"ok"}, ErrInvalidUTF8},
		{"surrogate", 5, "\xed\xa0\x80\n", nil, ErrInvalidUTF8},
		{"truncated rune at EOF", 8, "\xe6\x97\xa5\xe6\x9c", nil, ErrInvalidUTF8},
		{"too large wins over invalid", 2, "\xff\xff\xff\n", nil, ErrTooLarge},
		{"long line", 10000, long + "\n" + long + "\r\n", []string{long, long}, io.EOF},
		{"long line over max", 10000, "a\n" + long + "a\n", []string{"a"}, ErrTooLarge},
		{"long line over max, CRLF", 10000, long + "a\r\n", nil, ErrTooLarge},
		{"long final line", 10000, long, []string{long}, io.EOF},
		{"largest max", math.MaxInt, "a\n" + long + "\r\nb", []string{"a", long, "b"}, io.EOF},
	}
	for _, tr := range transports {
		for _, tc := range cases {
			t.Run(tr.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				a, b := tr.pair(t)
				wait := writeAndClose(b, []byte(tc.in), false)
				defer wait()
				l := NewLines(a, tc.max)
				var got []string
				var err error
				for {
					var msg string
					if msg, err = l.Recv(context.Background()); err != nil {
						break
					}
					got = append(got, msg)
				}
				if !equalStrings(got, tc.want) {
					t.Errorf("messages %q, want %q", got, tc.want)
				}
				checkEnd(t, err, tc.err)
				if _, again := l.Recv(context.Background()); again != err {
					t.Errorf("Recv after %v: %v", err, again)
				}
				if tc.err != io.EOF {
					if _, werr := l.Conn().Write([]byte("x")); !isClosedErr(werr) {
						t.Errorf("conn not closed after %v: Write: %v", err, werr)
					}
				}
			})
		}
	}
}

// checkEnd checks the error that ended receiving: io.EOF itself, or an
// error matching want that starts with "framing: ".
func checkEnd(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == io.EOF:
		if err != io.EOF {
			t.Errorf("end %v, want io.EOF", err)
		}
	case !errors.Is(err, want):
		t.Errorf("end %v, want %v", err, want)
	case !strings.HasPrefix(err.Error(), "framing: "):
		t.Errorf("error %q does not start with \"framing: \"", err)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLinesRecvErrorText(t *testing.T) {
	t.Parallel()
	cases := []struct {
		max  int
		in   string
		want string
	}{
		{5, "abcdef\n", "framing: received message of 6 bytes is over max_message (5)"},
		{5, "abcdef\r\n", "framing: received message of 6 bytes is over max_message (5)"},
		{1048576, strings.Repeat("x", 1048577) + "\n", "framing: received message of 1048577 bytes is over max_message (1048576)"},
		{5, "abcdefgh", "framing: received message is over max_message (5): no newline in its first 8 bytes"},
		{5, "ab\xffc\n", "framing: received message is not valid UTF-8 (bad byte at offset 2 of 4)"},
	}
	for _, tc := range cases {
		l := NewLines(&fakeConn{r: strings.NewReader(tc.in), chunk: len(tc.in)}, tc.max)
		if _, err := l.Recv(context.Background()); err == nil || err.Error() != tc.want {
			t.Errorf("max %d, %.20q: %v, want %s", tc.max, tc.in, err, tc.want)
		}
	}
}

func TestLinesSend(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		msg  string
		err  error  // nil: msg+"\n" is written with one Write
		text string // the error's text, if err
	}{
		{"0 bytes", "", nil, ""},
		{"1 byte", "a", nil, ""},
		{"exactly max", "abcde", nil, ""},
		{"runes", "日é", nil, ""},
		{"CR", "a\r", nil, ""},
		{"max+1", "abcdef", ErrTooLarge, "framing: message of 6 bytes is over max_message (5)"},
		{"newline", "a\nb", ErrNewline, "framing: message to send contains a newline (at offset 1 of 3)"},
		{"only newline", "\n", ErrNewline, ""},
		{"invalid UTF-8", "a\xff", ErrInvalidUTF8, "framing: message to send is not valid UTF-8 (bad byte at offset 1 of 2)"},
		{"truncated rune", "\xe6\x97", ErrInvalidUTF8, ""},
		{"too large wins", "\n\n\n\n\n\n", ErrTooLarge, ""},
	}
	a, b := tcpPair(t)
	rc := &recConn{Conn: a}
	l := NewLines(rc, 5)
	wait := readAll(b)
	var want bytes.Buffer
	for _, tc := range cases {
		err := l.Send(context.Background(), tc.msg)
		writes := rc.takeWrites()
		if tc.err == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			if len(writes) != 1 || string(writes[0]) != tc.msg+"\n" {
				t.Errorf("%s: writes %q, want one of %q", tc.name, writes, tc.msg+"\n")
			}
			want.WriteString(tc.msg + "\n")
			continue
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		} else if tc.text != "" && err.Error() != tc.text {
			t.Errorf("%s: %q, want %q", tc.name, err, tc.text)
		}
		if len(writes) != 0 {
			t.Errorf("%s: wrote %q", tc.name, writes)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := wait(); !bytes.Equal(got, want.Bytes()) {
		t.Errorf("peer got %q, want %q", got, want.Bytes())
	}
}

// TestLinesBounded sends an endless line: Recv must fail with ErrTooLarge
// having read at most max+2 bytes beyond its read buffer.
func TestLinesBounded(t *testing.T) {
	t.Parallel()
	for _, max := range []int{1, 100, 5000, 100000} {
		for _, fill := range []byte{'a', '\r'} {
			t.Run(fmt.Sprintf("%d/%q", max, fill), func(t *testing.T) {
				t.Parallel()
				a, b := tcpPair(t)
				cc := newCountConn(a)
				done := make(chan int64, 1)
				go func() {
					chunk := bytes.Repeat([]byte{fill}, 1024)
					var n int64
					for {
						k, err := b.Write(chunk)
						n += int64(k)
						if err != nil {
							done <- n
							return
						}
					}
				}()
				l := NewLines(cc, max)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err := l.Recv(ctx)
				if !errors.Is(err, ErrTooLarge) {
					t.Errorf("Recv: %v, want ErrTooLarge", err)
				}
				if n, limit := cc.count(), int64(max+2+readBufSize); n > limit {
					t.Errorf("read %d bytes, more than %d", n, limit)
				}
				b.Close()
				wrote := <-done
				if wrote <= int64(max+1) {
					t.Errorf("peer wrote only %d bytes", wrote)
				}
			})
		}
	}
}
