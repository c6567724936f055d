package tunnel

import (
	"bytes"
	"crypto/rand"
	"io"
	"slices"
	"testing"
)

// burstyReader returns reads of the given sizes in turn, then EOF.
type burstyReader struct {
	data  []byte
	sizes []int
}

func (r *burstyReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(p)
	if len(r.sizes) > 0 {
		n = min(n, r.sizes[0])
		r.sizes = r.sizes[1:]
	}
	n = copy(p, r.data[:min(n, len(r.data))])
	r.data = r.data[n:]
	return n, nil
}

// TestCopyAdaptive copies through bursts and lulls, which move it between
// its small and large buffers, and checks every byte arrives in order.
func TestCopyAdaptive(t *testing.T) {
	t.Parallel()
	data := make([]byte, 3<<20)
	rand.Read(data)
	sizes := []int{10, smallCopy, smallCopy, largeCopy, 100, smallCopy, largeCopy, largeCopy, 1, 7}
	var out bytes.Buffer
	n, err := copyAdaptive(&out, &burstyReader{data: data, sizes: sizes}, nil)
	if err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("copied %d of %d bytes, %v, equal %v", n, len(data), err, bytes.Equal(out.Bytes(), data))
	}
}

// offerReader returns reads of the given sizes in turn, records how
// large a buffer each Read was given and whether the grant held a bulk
// buffer then, and ends with EOF.
type offerReader struct {
	sizes  []int
	grant  *countGrant
	offers []int
	held   []int
}

func (r *offerReader) Read(p []byte) (int, error) {
	r.offers = append(r.offers, len(p))
	r.held = append(r.held, r.grant.held)
	if len(r.sizes) == 0 {
		return 0, io.EOF
	}
	n := min(r.sizes[0], len(p))
	r.sizes = r.sizes[1:]
	return n, nil
}

// TestCopyAdaptiveGivesBack: the read after one that leaves the bulk
// buffer partly empty (the read that waits while the stream is idle) is
// offered the small buffer, with the bulk one given back, however much
// the partial read returned; a full small read takes it again.
func TestCopyAdaptiveGivesBack(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		sizes  []int
		offers []int
	}{
		{"burst ending at 24 KiB", []int{smallCopy, 24 << 10}, []int{smallCopy, largeCopy, smallCopy}},
		{"burst ending at 200 KiB", []int{smallCopy, largeCopy, 200 << 10}, []int{smallCopy, largeCopy, largeCopy, smallCopy}},
		{"burst ending at 100 bytes", []int{smallCopy, 100}, []int{smallCopy, largeCopy, smallCopy}},
		{"bulk of partial reads", []int{smallCopy, 100 << 10, smallCopy, 100 << 10, 10}, []int{smallCopy, largeCopy, smallCopy, largeCopy, smallCopy, smallCopy}},
		{"small reads only", []int{10, 100, smallCopy - 1}, []int{smallCopy, smallCopy, smallCopy, smallCopy}},
	}
	for _, tt := range tests {
		g := &countGrant{n: 16}
		r := &offerReader{sizes: tt.sizes, grant: g}
		if _, err := copyAdaptive(io.Discard, r, g); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !slices.Equal(r.offers, tt.offers) {
			t.Errorf("%s: reads offered %v bytes, want %v", tt.name, r.offers, tt.offers)
		}
		for i, n := range r.offers {
			want := 0 // the bulk buffer is held exactly while a read fills it
			if n == largeCopy {
				want = 1
			}
			if r.held[i] != want {
				t.Errorf("%s: read %d (%d bytes offered) had the grant hold %d, want %d", tt.name, i, n, r.held[i], want)
			}
		}
		if g.held != 0 {
			t.Errorf("%s: grant holds %d at the end", tt.name, g.held)
		}
	}
}
