package tunnel

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadRequest: any bytes give a request or an error, never a panic;
// a request read back from its own encoding is the same request.
func FuzzReadRequest(f *testing.F) {
	open, _ := AppendOpenRequest(nil, "redis")
	reg, _ := AppendRegisterRequest(nil, "laptop-postgres", "host-1")
	for _, seed := range [][]byte{open, reg, {0x01}, {0x02, 0x01, 'a'}, {0x02, 0x01, 'a', 0x00}, {0x03, 0x01, 'a'}, {0x01, 0x02, 0xff, 0xfe}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := ReadRequest(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrBadOpen) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		var enc []byte
		if req.Register {
			enc, err = AppendRegisterRequest(nil, req.Service, req.ExposerID)
		} else {
			enc, err = AppendOpenRequest(nil, req.Service)
		}
		if err != nil {
			t.Fatalf("%+v does not encode: %v", req, err)
		}
		back, err := ReadRequest(bytes.NewReader(enc))
		if err != nil || back != req {
			t.Fatalf("round trip of %+v: %+v, %v", req, back, err)
		}
	})
}

// FuzzReadOpenResponse: any bytes give a response or an error; a response
// read back from its own encoding is the same.
func FuzzReadOpenResponse(f *testing.F) {
	for _, seed := range [][]byte{
		AppendOpenResponse(nil, OpenOK, ""),
		AppendOpenResponse(nil, OpenNotExposed, "no client exposes laptop right now"),
		{0x01, 0x00, 0x04, 0x01}, {0x02, 0x00, 0x00, 0x00}, {0x01, 0x03, 0x00, 0x02, 0xc3},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		status, msg, err := ReadOpenResponse(bytes.NewReader(b))
		if err != nil {
			return
		}
		s2, m2, err := ReadOpenResponse(bytes.NewReader(AppendOpenResponse(nil, status, msg)))
		if err != nil || s2 != status || m2 != msg {
			t.Fatalf("round trip of %v %q: %v %q %v", status, msg, s2, m2, err)
		}
	})
}
