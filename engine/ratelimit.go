package engine

import (
	"net/netip"
	"time"
)

// helloLimiter bounds the replies a server sends to unverified sources
// (CONNECT <ip> <port> and GO AWAY! in answer to HELLO) per source IP, so
// that HELLOs with a forged source cannot turn the server into a
// reflector aimed at a victim. It is a token bucket per IP.
type helloLimiter struct {
	buckets map[netip.Addr]bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds the limiter's memory under a flood from many forged
// addresses: past it, buckets that have refilled are forgotten, and if
// none has, all are.
const maxBuckets = 1 << 16

// allow reports whether a reply to ip may go now, and takes a token.
func (l *helloLimiter) allow(ip netip.Addr, now time.Time, rate float64, burst int) bool {
	if l.buckets == nil {
		l.buckets = make(map[netip.Addr]bucket)
	}
	b, ok := l.buckets[ip]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.sweep(now, rate, burst)
		}
		b = bucket{tokens: float64(burst), last: now}
	}
	b.tokens = min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	allowed := b.tokens >= 1
	if allowed {
		b.tokens--
	}
	l.buckets[ip] = b
	return allowed
}

// sweep forgets the buckets that are full again, as a new bucket would be.
func (l *helloLimiter) sweep(now time.Time, rate float64, burst int) {
	for ip, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*rate >= float64(burst) {
			delete(l.buckets, ip)
		}
	}
	if len(l.buckets) >= maxBuckets {
		clear(l.buckets)
	}
}
