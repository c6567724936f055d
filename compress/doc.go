// Package compress is permessage-deflate (RFC 7692) for Ferry's WebSocket:
// the negotiation of its four parameters, and per-connection compressors
// and decompressors built on github.com/klauspost/compress/flate.
//
// Memory is the design's first concern, since a gateway holds thousands of
// mostly idle connections. Flate writers (hundreds of KiB each) and readers
// (tens of KiB) live in pools and are held only while a message is being
// compressed or inflated, or, with context takeover on the sending side,
// while messages keep coming: an idle sender gives its writer back and keeps
// only the last few KiB it sent, from which the next message's compressor
// is seeded (any suffix of what was sent is in the peer's window). A
// receiver with context takeover keeps the peer's window (up to 32 KiB),
// allocated on the first compressed message. Without context takeover an
// idle connection holds nothing.
//
// Inflating is bounded: the limit applies to the inflated bytes as they are
// produced, so a small message that inflates to gigabytes is stopped after
// at most the limit.
package compress
