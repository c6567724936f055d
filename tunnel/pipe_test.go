package tunnel

import (
	"bytes"
	"crypto/rand"
	"io"
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
