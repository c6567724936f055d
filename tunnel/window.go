package tunnel

// MinWindow is the smallest receive window per stream that yamux allows,
// and the window every stream starts with (yamux spec: 256 KiB).
const MinWindow = 256 << 10

// DefaultWindow is the receive window per stream that Ferry grants when
// nothing else is configured: yamux's initial window. A larger window
// raises one stream's throughput over long round trips and raises what a
// peer that never reads can make this side buffer, by the same factor.
const DefaultWindow = MinWindow
