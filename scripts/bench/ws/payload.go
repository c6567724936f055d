//go:build linux

package main

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// zMessages is how many distinct messages each compressed payload cycles
// through: at 16 KiB, a megabyte, far more than the 32 KiB window of
// deflate, so context takeover cannot simply match the previous lap.
const zMessages = 64

// protocolMessages returns zMessages messages of size bytes cut from one
// protocol stream, as a tunnel carries it: Redis commands (RESP) whose
// values are JSON records with varying ids, names, timestamps, amounts and
// session ids. The stream is the same on every run (fixed seed).
func protocolMessages(size int) [][]byte {
	s := protocolStream(size * zMessages)
	msgs := make([][]byte, zMessages)
	for i := range msgs {
		msgs[i] = s[i*size : (i+1)*size : (i+1)*size]
	}
	return msgs
}

// randomMessages returns zMessages messages of size random bytes, which no
// compressor can shrink.
func randomMessages(size int) [][]byte {
	r := rand.NewChaCha8([32]byte{'f', 'e', 'r', 'r', 'y'})
	s := make([]byte, size*zMessages)
	r.Read(s)
	msgs := make([][]byte, zMessages)
	for i := range msgs {
		msgs[i] = s[i*size : (i+1)*size : (i+1)*size]
	}
	return msgs
}

var (
	firstNames = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
		"mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yasmin"}
	lastNames = []string{"smith", "jones", "garcia", "müller", "rossi", "dubois", "silva", "kowalski", "nakamura",
		"okafor", "novak", "jensen", "larsen", "costa", "ivanova", "haddad"}
	events     = []string{"order.created", "order.paid", "order.shipped", "cart.updated", "session.start", "page.view", "payment.failed", "user.login"}
	currencies = []string{"EUR", "USD", "GBP", "CHF", "JPY"}
	countries  = []string{"DE", "FR", "IT", "ES", "NL", "PL", "SE", "US", "GB", "JP"}
	channels   = []string{"events", "orders", "audit", "metrics"}
)

// protocolStream returns n bytes of the stream protocolMessages cuts up.
func protocolStream(n int) []byte {
	r := rand.New(rand.NewPCG(4, 2))
	ts := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	id := 7_300_000
	b := make([]byte, 0, n+1024)
	var js []byte
	for len(b) < n {
		id += 1 + r.IntN(7)
		ts = ts.Add(time.Duration(r.IntN(40_000)) * time.Microsecond)
		first, last := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
		user := 10_000 + r.IntN(90_000)
		js = fmt.Appendf(js[:0], `{"id":%d,"ts":"%s","event":"%s","user":{"id":%d,"name":"%s %s","email":"%s.%s%d@example.com","country":"%s"},`+
			`"amount":%d.%02d,"currency":"%s","items":[`,
			id, ts.Format("2006-01-02T15:04:05.000000Z"), events[r.IntN(len(events))], user, first, last, first, last, user%100,
			countries[r.IntN(len(countries))], r.IntN(2000), r.IntN(100), currencies[r.IntN(len(currencies))])
		for i := range 1 + r.IntN(3) {
			if i > 0 {
				js = append(js, ',')
			}
			js = fmt.Appendf(js, `{"sku":"SKU-%05d","qty":%d,"price":%d.%02d}`, r.IntN(50_000), 1+r.IntN(4), r.IntN(300), r.IntN(100))
		}
		js = fmt.Appendf(js, `],"session":"%016x","ok":%t}`, r.Uint64(), r.IntN(10) > 0)
		switch r.IntN(4) {
		case 0, 1:
			key := fmt.Sprintf("order:%d", id)
			b = fmt.Appendf(b, "*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$2\r\nEX\r\n$4\r\n3600\r\n", len(key), key, len(js), js)
		case 2:
			ch := channels[r.IntN(len(channels))]
			b = fmt.Appendf(b, "*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(ch), ch, len(js), js)
		case 3:
			key := fmt.Sprintf("stream:%s", channels[r.IntN(len(channels))])
			b = fmt.Appendf(b, "*5\r\n$4\r\nXADD\r\n$%d\r\n%s\r\n$1\r\n*\r\n$4\r\ndata\r\n$%d\r\n%s\r\n", len(key), key, len(js), js)
		}
	}
	return b[:n]
}
