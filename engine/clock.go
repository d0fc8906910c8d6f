package engine

import (
	"sync"
	"time"
)

// A Clock tells the time for the protocol's timers (retries, pings, stalls,
// timeouts). Only differences between two readings matter, so a monotonic
// clock is right; tests use a ManualClock to run timers without waiting.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real, monotonic clock.
type SystemClock struct{}

// Now returns time.Now(), which carries a monotonic reading.
func (SystemClock) Now() time.Time { return time.Now() }

// ManualClock is a Clock that moves only when told to. The zero value
// starts at an arbitrary fixed instant. It is safe for concurrent use.
type ManualClock struct {
	mu  sync.Mutex
	now time.Time
}

// manualEpoch is where a zero ManualClock starts.
var manualEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Now returns the clock's current reading.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now.IsZero() {
		c.now = manualEpoch
	}
	return c.now
}

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now.IsZero() {
		c.now = manualEpoch
	}
	c.now = c.now.Add(d)
}
