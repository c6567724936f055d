//go:build race

package tests

// wasmBulkSize is what each stream of the browser bulk test carries:
// smaller under -race, where the gateway in this process runs slower.
const wasmBulkSize = 1 << 20
