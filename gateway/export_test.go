package gateway

import (
	"testing"
	"time"
)

// SetHTTPBounds sets, until the test ends, the public listener's
// keep-alive idle timeout (for gateways served from now on) and the write
// deadline of page and asset responses: floor plus the body's size at rate
// bytes per second. A test that calls it must not be parallel.
func SetHTTPBounds(t testing.TB, idle, floor time.Duration, rate float64) {
	oldIdle, oldFloor, oldRate := httpIdleTimeout, writeFloor, writeRate
	httpIdleTimeout, writeFloor, writeRate = idle, floor, rate
	t.Cleanup(func() { httpIdleTimeout, writeFloor, writeRate = oldIdle, oldFloor, oldRate })
}
