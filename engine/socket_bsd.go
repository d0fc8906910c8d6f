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

// recvBatch holds the datagrams of one read.
type recvBatch struct {
	bufs [batchSize][]byte
	lens [batchSize]int
	from [batchSize]netip.AddrPort
}

func newRecvBatch() *recvBatch {
	b := new(recvBatch)
	makeRecvBuffers(&b.bufs)
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

// sendOne sends one datagram (see sendBatch in sendbatch_plain.go).
func sendOne(s *udpSocket, to netip.AddrPort, p []byte) error {
	for {
		err := unix.Sendto(s.fd, p, 0, sockaddr(s.family, to))
		if !errors.Is(err, unix.EINTR) {
			return os.NewSyscallError("sendto", err)
		}
	}
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
