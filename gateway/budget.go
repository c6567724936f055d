package gateway

import (
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/gateway/config"
)

// defaultReapTimeout is how long the gateway reads and drops what a client
// still sends on a stream the gateway has closed (a refusal, a failed
// backend) before it resets the stream.
const defaultReapTimeout = 5 * time.Second

// budget is the gateway's account of reserved buffer space, against
// [limits] buffer_budget (see config.Config.SessionWorst for what is
// charged when).
type budget struct {
	limit atomic.Int64 // a reload may change it
	used  atomic.Int64
}

// reserve takes n bytes from the budget, if they fit.
func (b *budget) reserve(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.limit.Load() {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *budget) release(n int64) { b.used.Add(-n) }

// copySlots is a session's tunnel.CopyGrant: at most config.LargeCopies
// bulk buffers at once, each reserved in the budget while it is held.
type copySlots struct {
	held chan struct{}
	b    *budget
}

func newCopySlots(b *budget) copySlots {
	return copySlots{held: make(chan struct{}, config.LargeCopies), b: b}
}

func (c copySlots) TryAcquire() bool {
	select {
	case c.held <- struct{}{}:
	default:
		return false
	}
	if !c.b.reserve(config.LargeCopy) {
		<-c.held
		return false
	}
	return true
}

func (c copySlots) Release() {
	c.b.release(config.LargeCopy)
	<-c.held
}
