// Package assets holds Ferry's built browser client, embedded, for the
// gateway to serve under /ferry/: client.wasm.gz and client.wasm.br (the
// js/wasm build of package client, gzip'ed and brotli'ed), ferry.js (the
// ES module that loads it, with the content hashes of what it loads), ferry.d.ts (its types) and
// wasm_exec.js (a verbatim copy of Go's $(go env GOROOT)/lib/wasm/
// wasm_exec.js). scripts/build-wasm writes these files from wasm/ and the
// toolchain; they are committed, so that the gateway builds on a machine
// that never built them, and a test rebuilds them and fails on any
// difference. Do not edit them: edit wasm/ and run scripts/build-wasm.
package assets

import _ "embed"

// ClientWasmGzip is client.wasm, gzip'ed.
//
//go:embed client.wasm.gz
var ClientWasmGzip string

// ClientWasmBrotli is the same client.wasm, compressed with brotli.
//
//go:embed client.wasm.br
var ClientWasmBrotli string

// FerryJS is the ES module ferry.js.
//
//go:embed ferry.js
var FerryJS string

// FerryDTS is ferry.d.ts, the types of ferry.js.
//
//go:embed ferry.d.ts
var FerryDTS string

// WasmExecJS is Go's wasm_exec.js, which runs client.wasm.
//
//go:embed wasm_exec.js
var WasmExecJS string
