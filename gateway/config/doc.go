// Package config is the gateway's configuration: the types, the TOML file
// that fills them (gateway.toml at the repository root shows every key),
// their defaults, and the checks that a config must pass before anything
// serves it.
//
// Parse starts from the defaults and decodes the file strictly, one key at a
// time, so that one mistake does not hide the next: an unknown key at any
// level, a value of the wrong type, a bad address, duration, size, CIDR,
// origin or hash, and every rule between keys (tls_cert without tls_key, a
// token naming a service that does not exist, two tokens with one hash, a
// service without a backend) is reported, all at once, as Errors. Each
// Error reads "file:line:col: key: msg", for example
//
//	gateway.toml:12:11: services.redis.backend: invalid address "127.0.0.1": want "host:port" (IPv6 as "[::1]:8080")
//	gateway.toml:31:10: tokens[1].sha256: same hash as tokens[0]
//
// Values that can be wrong on their own are encoding.TextUnmarshaler types
// (Duration, ByteSize, and private ones behind addresses, paths, origins,
// CIDRs and hashes) that the TOML decoder calls, so a bad value is reported
// while decoding. The decoder keeps only one position per key name (all
// [[tokens]] entries share one), so the positions come from a second, small
// reading of the source that maps each key path to its line and column.
// Validate applies the same rules to a Config built in Go.
//
// Default is the config `ferry serve` runs without -config: the embedded
// default.toml, loopback only, with one public service, "echo". A file
// never inherits that service: Parse's defaults have no services and no
// tokens.
//
// A Config is plain data: read it from any number of goroutines; the
// gateway never changes one, and a reload parses a new one.
package config
