package tunnel

import (
	"encoding/binary"
	"math/bits"
)

// mask XORs b with the masking key (section 5.3), starting at key phase 0,
// and returns the key rotated so that a following call continues the
// sequence. The key is the 4 wire bytes read as a little-endian uint32.
//
// It works on 8 bytes at a time; the byte loop only handles the tail.
func mask(b []byte, key uint32) uint32 {
	if len(b) >= 8 {
		k64 := uint64(key) | uint64(key)<<32
		for len(b) >= 64 {
			v := binary.LittleEndian.Uint64(b)
			binary.LittleEndian.PutUint64(b, v^k64)
			v = binary.LittleEndian.Uint64(b[8:])
			binary.LittleEndian.PutUint64(b[8:], v^k64)
			v = binary.LittleEndian.Uint64(b[16:])
			binary.LittleEndian.PutUint64(b[16:], v^k64)
			v = binary.LittleEndian.Uint64(b[24:])
			binary.LittleEndian.PutUint64(b[24:], v^k64)
			v = binary.LittleEndian.Uint64(b[32:])
			binary.LittleEndian.PutUint64(b[32:], v^k64)
			v = binary.LittleEndian.Uint64(b[40:])
			binary.LittleEndian.PutUint64(b[40:], v^k64)
			v = binary.LittleEndian.Uint64(b[48:])
			binary.LittleEndian.PutUint64(b[48:], v^k64)
			v = binary.LittleEndian.Uint64(b[56:])
			binary.LittleEndian.PutUint64(b[56:], v^k64)
			b = b[64:]
		}
		for len(b) >= 8 {
			v := binary.LittleEndian.Uint64(b)
			binary.LittleEndian.PutUint64(b, v^k64)
			b = b[8:]
		}
	}
	for i := range b {
		b[i] ^= byte(key)
		key = bits.RotateLeft32(key, -8)
	}
	return key
}

// maskBytewise is the plain byte loop, kept as the reference that the tests
// and benchmarks compare mask against.
func maskBytewise(b []byte, key [4]byte, pos int) int {
	for i := range b {
		b[i] ^= key[pos&3]
		pos++
	}
	return pos & 3
}
