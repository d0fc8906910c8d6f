//go:build darwin || dragonfly || freebsd || netbsd || openbsd || (linux && udpipe_portable)

package engine

import (
	"errors"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// This file is the I/O of the engine on the BSDs and macOS, which have no
// recvmmsg, sendmmsg or epoll: one system call per datagram read or sent,
// and poll over the endpoint's sockets. Like socket_linux.go it runs
// entirely on the goroutine that calls Step. On Linux, the build tag
// udpipe_portable selects it, so that its tests run here:
//
//	go test -tags udpipe_portable ./engine

// serverPollerFDs is how many descriptors a server's poller holds: none,
// poll needs none.
const serverPollerFDs = 0

// batchSize is how many datagrams one read takes.
const batchSize = 64

// recvBatch holds the datagrams of one read.
type recvBatch struct {
	bufs [batchSize][]byte
	lens [batchSize]int
	from [batchSize]netip.AddrPort
}

func newRecvBatch() *recvBatch {
	b := new(recvBatch)
	for i := range b.bufs {
		b.bufs[i] = make([]byte, MaxDatagram+1) // +1 tells an oversized datagram
	}
	return b
}

// read fills b[from:] from s without waiting and returns how many
// datagrams it took in.
func (b *recvBatch) read(s *udpSocket, from int) (int, error) {
	n := 0
	for i := from; i < batchSize; i++ {
		size, sa, err := unix.Recvfrom(s.fd, b.bufs[i], unix.MSG_DONTWAIT)
		switch {
		case err == nil:
			b.lens[i], b.from[i] = size, addrPortOf(sa)
			n++
		case errors.Is(err, unix.EINTR):
			i--
		case errors.Is(err, unix.EAGAIN):
			return n, nil
		default:
			// An ICMP error for an earlier send, or a broken socket.
			return n, os.NewSyscallError("recvfrom", err)
		}
	}
	return n, nil
}

// datagram returns the i-th datagram read and where it came from.
func (b *recvBatch) datagram(i int) ([]byte, netip.AddrPort) {
	return b.bufs[i][:b.lens[i]], b.from[i]
}

// sendBatch collects outgoing datagrams until flush sends them.
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
		for {
			err := unix.Sendto(o.s.fd, b.arena[o.start:o.end], 0, sockaddr(o.s.family, o.to))
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				failed(o.s, os.NewSyscallError("sendto", err))
			}
			break
		}
		*o = outgoing{}
	}
	b.n = 0
	b.arena = b.arena[:0]
}

// poller waits until one of an endpoint's sockets is readable, with poll
// over all of them.
type poller struct {
	fds   []unix.PollFd
	slots []int // the slot of each entry of fds
}

func newPoller() *poller { return &poller{} }

func (p *poller) add(s *udpSocket, multi bool) error {
	p.fds = append(p.fds, unix.PollFd{Fd: int32(s.fd), Events: unix.POLLIN})
	p.slots = append(p.slots, s.slot)
	return nil
}

func (p *poller) remove(s *udpSocket) {
	for i := range p.fds {
		if p.fds[i].Fd == int32(s.fd) {
			last := len(p.fds) - 1
			p.fds[i], p.slots[i] = p.fds[last], p.slots[last]
			p.fds, p.slots = p.fds[:last], p.slots[:last]
			return
		}
	}
}

// wait blocks up to d for a socket to become readable and returns the
// slots of the readable sockets. d <= 0 does not block.
func (p *poller) wait(d time.Duration, ready []int) ([]int, error) {
	deadline := time.Now().Add(d)
	for {
		ms := 0
		if d > 0 {
			ms = int((time.Until(deadline) + time.Millisecond - 1) / time.Millisecond)
			if ms <= 0 {
				return ready, nil
			}
		}
		if len(p.fds) == 0 {
			time.Sleep(time.Duration(ms) * time.Millisecond)
			return ready, nil
		}
		n, err := unix.Poll(p.fds, ms)
		if errors.Is(err, unix.EINTR) {
			if d <= 0 {
				return ready, nil
			}
			continue
		}
		if err != nil {
			return ready, os.NewSyscallError("poll", err)
		}
		for i := 0; n > 0 && i < len(p.fds); i++ {
			if p.fds[i].Revents != 0 {
				ready = append(ready, p.slots[i])
				n--
			}
		}
		return ready, nil
	}
}

func (p *poller) close() {}
