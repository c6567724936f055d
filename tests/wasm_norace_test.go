//go:build !race

package tests

// wasmBulkSize is what each stream of the browser bulk test carries.
const wasmBulkSize = 8 << 20
