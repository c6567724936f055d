package gateway

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// TestRateLimiterAllow: token bucket semantics with an injected clock:
// the burst, refill at the rate, addresses apart, and state that survives
// one generation change but not two.
func TestRateLimiterAllow(t *testing.T) {
	t.Parallel()
	type step struct {
		after time.Duration // since the previous step
		ip    string
		want  bool
	}
	const ms = time.Millisecond
	for _, tc := range []struct {
		name  string
		rate  float64
		steps []step
	}{
		{"burst of the rate, then empty", 3, []step{
			{0, "192.0.2.1", true}, {0, "192.0.2.1", true}, {0, "192.0.2.1", true}, {0, "192.0.2.1", false},
			{0, "192.0.2.2", true}, // another address has its own bucket
		}},
		{"refill at the rate", 2, []step{
			{0, "192.0.2.1", true}, {0, "192.0.2.1", true}, {0, "192.0.2.1", false},
			{400 * ms, "192.0.2.1", false}, // 0.8 of a token
			{100 * ms, "192.0.2.1", true},  // 1.0
			{0, "192.0.2.1", false},
			{10 * time.Second, "192.0.2.1", true}, // full again, but never above the burst
			{0, "192.0.2.1", true}, {0, "192.0.2.1", false},
		}},
		{"a rate below one: a burst of one", 0.5, []step{
			{0, "192.0.2.1", true}, {time.Second, "192.0.2.1", false}, {time.Second, "192.0.2.1", true},
		}},
		{"a fractional rate above one rounds the burst up", 1.5, []step{
			{0, "192.0.2.1", true}, {0, "192.0.2.1", true}, {0, "192.0.2.1", false},
		}},
		// rate 2, burst 2: a generation lasts one second.
		{"a bucket outlives one generation change", 2, []step{
			{0, "192.0.2.9", true},                                // the generation starts at 0
			{900 * ms, "192.0.2.1", true}, {0, "192.0.2.1", true}, // empty at 0.9 s
			{100 * ms, "192.0.2.9", true},  // 1.0 s: a new generation; .1 is in the old one
			{200 * ms, "192.0.2.1", false}, // 0.6 of a token: remembered
			{250 * ms, "192.0.2.1", true},  // 1.1
		}},
		{"an address unseen for two generations is fresh", 2, []step{
			{0, "192.0.2.1", true}, {0, "192.0.2.1", true}, {0, "192.0.2.1", false},
			{2 * time.Second, "192.0.2.1", true}, {0, "192.0.2.1", true}, {0, "192.0.2.1", false},
		}},
	} {
		clock := &fakeClock{t: time.Unix(1e9, 0)}
		l := newRateLimiter(tc.rate, clock.now)
		for i, s := range tc.steps {
			clock.advance(s.after)
			if got := l.allow(s.ip); got != s.want {
				t.Errorf("%s: step %d (%s at +%v): allow = %v, want %v", tc.name, i, s.ip, clock.t.Sub(time.Unix(1e9, 0)), got, s.want)
			}
		}
	}
}

// TestRateLimiterGenerations: the generations turn over every burst/rate
// and drop what no handshake touched for two of them.
func TestRateLimiterGenerations(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	l := newRateLimiter(4, clock.now) // burst 4: a generation lasts 1 s
	if l.window != time.Second {
		t.Fatalf("window %v, want 1s", l.window)
	}
	for i := range 10 {
		l.allow(fmt.Sprintf("192.0.2.%d", i))
	}
	if len(l.cur) != 10 || len(l.prev) != 0 {
		t.Fatalf("after 10 addresses: cur %d, prev %d", len(l.cur), len(l.prev))
	}
	clock.advance(time.Second)
	l.allow("198.51.100.1")
	if len(l.cur) != 1 || len(l.prev) != 10 {
		t.Fatalf("one window later: cur %d, prev %d; want 1 and 10", len(l.cur), len(l.prev))
	}
	l.allow("192.0.2.3") // moves up into cur
	clock.advance(time.Second)
	l.allow("198.51.100.2")
	if len(l.cur) != 1 || len(l.prev) != 2 {
		t.Fatalf("two windows later: cur %d, prev %d; want 1 and 2", len(l.cur), len(l.prev))
	}
	clock.advance(2 * time.Second)
	l.allow("198.51.100.3")
	if len(l.cur) != 1 || len(l.prev) != 0 {
		t.Fatalf("after two idle windows: cur %d, prev %d; want 1 and 0", len(l.cur), len(l.prev))
	}
}

// TestRateLimiterBounded: 200,000 distinct addresses, IPv4 and IPv6, all
// within one window, keep the limiter within two generations of
// maxBuckets, and each new address still gets its burst.
func TestRateLimiterBounded(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	l := newRateLimiter(20, clock.now)
	most := 0
	for i := range 200000 {
		var ip string
		if i%2 == 0 {
			ip = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String()
		} else {
			ip = fmt.Sprintf("2001:db8:%x:%x::1", i>>16, i&0xffff) // a /64 each
		}
		if !l.allow(ip) {
			t.Fatalf("address %d (%s): refused its first handshake", i, ip)
		}
		clock.advance(time.Microsecond)
		most = max(most, len(l.cur)+len(l.prev))
	}
	if most > 2*maxBuckets {
		t.Fatalf("the limiter held %d addresses, want at most %d", most, 2*maxBuckets)
	}
	t.Logf("at most %d addresses held", most)
}

// TestRateLimiterKeys: IPv6 counts by /64, IPv4 by address (mapped or
// not), and what is no address shares one bucket.
func TestRateLimiterKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true},
		{"2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"fe80::1%eth0", "fe80::2%eth1", true},
		{"192.0.2.1", "::ffff:192.0.2.1", true},
		{"192.0.2.1", "192.0.2.2", false},
		{"::", "0.0.0.0", false},
		{"pipe", "@", true},
		{"pipe", "ffff:ffff:ffff:ffff::", false},
	} {
		if got := limitKeyOf(tc.a) == limitKeyOf(tc.b); got != tc.same {
			t.Errorf("%s and %s share a bucket: %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
	// One /64 is one bucket: a host that changes its interface ID on
	// every handshake is still limited.
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	l := newRateLimiter(2, clock.now)
	got := []bool{l.allow("2001:db8::1"), l.allow("2001:db8::2"), l.allow("2001:db8::3"), l.allow("2001:db8:0:1::1")}
	if want := []bool{true, true, false, true}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("allow across one /64 and then another: %v, want %v", got, want)
	}
}

// BenchmarkRateLimiterDistinct: every handshake from a new address costs
// the same, however many came before.
func BenchmarkRateLimiterDistinct(b *testing.B) {
	b.ReportAllocs()
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	l := newRateLimiter(20, clock.now)
	ips := make([]string, 1<<18)
	for i := range ips {
		ips[i] = fmt.Sprintf("2001:db8:%x:%x::1", i>>16, i&0xffff)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l.allow(ips[i&(len(ips)-1)])
	}
}
