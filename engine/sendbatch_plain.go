//go:build !linux || udpipe_portable

package engine

import "net/netip"

// batchSize is how many datagrams one read takes, and how many sends wait
// for a flush.
const batchSize = 64

// sendBatch collects outgoing datagrams until flush sends them, one
// system call each (sendOne), on the systems without sendmmsg. Payloads
// are copied into arena, so the caller's buffer is free as soon as add
// returns.
type sendBatch struct {
	out   [batchSize]outgoing
	n     int
	arena []byte
}

type outgoing struct {
	s          *udpSocket
	to         netip.AddrPort
	start, end int
}

const sendArenaSize = 256 << 10

func newSendBatch() *sendBatch {
	return &sendBatch{arena: make([]byte, 0, sendArenaSize)}
}

// room reports whether a datagram of size bytes fits without a flush.
func (b *sendBatch) room(size int) bool {
	return b.n < batchSize && len(b.arena)+size <= cap(b.arena)
}

// add queues p for s to send to to. The caller has checked room.
func (b *sendBatch) add(s *udpSocket, to netip.AddrPort, p []byte) {
	start := len(b.arena)
	b.arena = append(b.arena, p...)
	b.out[b.n] = outgoing{s: s, to: to, start: start, end: len(b.arena)}
	b.n++
}

// flush sends everything queued and empties the batch; failed is called
// for each datagram the system refused.
func (b *sendBatch) flush(failed func(s *udpSocket, err error)) {
	for i := range b.out[:b.n] {
		o := &b.out[i]
		if err := sendOne(o.s, o.to, b.arena[o.start:o.end]); err != nil {
			failed(o.s, err)
		}
		*o = outgoing{}
	}
	b.n = 0
	b.arena = b.arena[:0]
}
