//go:build linux && !udpipe_portable

package engine

import (
	"net/netip"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file is the I/O at the bottom of the engine: non-blocking UDP
// sockets, batched reads and writes with recvmmsg and sendmmsg, and the
// readiness poller. Everything is a direct system call on the goroutine
// that calls Step, so a datagram goes from the kernel to the handler with
// no goroutine hand-off, and a batch of replies goes back in one call.
//
// golang.org/x/net/ipv4's ReadBatch would block in the Go runtime's poller
// until its own socket is readable; an endpoint must wait on many sockets
// at once and return after a timeout, so it drives recvmmsg itself.

// rawAddr is room for an IPv4 or IPv6 socket address in the form the
// kernel reads and writes.
type rawAddr = unix.RawSockaddrInet6

// putRawAddr writes ap into r for a socket of the given family and
// returns the length to give the kernel.
func putRawAddr(r *rawAddr, family int, ap netip.AddrPort) uint32 {
	port := ap.Port()
	if family == unix.AF_INET {
		r4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(r))
		r4.Family = unix.AF_INET
		r4.Port = port<<8 | port>>8
		r4.Addr = ap.Addr().Unmap().As4()
		r4.Zero = [8]uint8{}
		return unix.SizeofSockaddrInet4
	}
	r.Family = unix.AF_INET6
	r.Port = port<<8 | port>>8
	r.Flowinfo = 0
	r.Addr = ap.Addr().As16()
	r.Scope_id = 0
	return unix.SizeofSockaddrInet6
}

// getRawAddr reads the address the kernel wrote into r.
func getRawAddr(r *rawAddr) netip.AddrPort {
	switch r.Family {
	case unix.AF_INET:
		r4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(r))
		return netip.AddrPortFrom(netip.AddrFrom4(r4.Addr), r4.Port<<8|r4.Port>>8)
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(r.Addr).Unmap(), r.Port<<8|r.Port>>8)
	}
	return netip.AddrPort{}
}

// serverPollerFDs is how many descriptors a server's poller holds: its
// epoll instance.
const serverPollerFDs = 1

// batchSize is how many datagrams one recvmmsg or sendmmsg moves.
const batchSize = 64

// recvBatch is the receive side of a batch: batchSize buffers big enough
// for any datagram. The pages of a buffer are touched only as far as a
// datagram fills it, so most of its 4 MiB stays virtual.
type recvBatch struct {
	hdrs  [batchSize]unix.Mmsghdr
	iovs  [batchSize]unix.Iovec
	addrs [batchSize]rawAddr
	bufs  [batchSize][]byte
}

func newRecvBatch() *recvBatch {
	b := new(recvBatch)
	makeRecvBuffers(&b.bufs)
	return b
}

// read fills b[from:] from s without waiting and returns how many
// datagrams it took in; a socket with nothing waiting gives 0 and no error.
func (b *recvBatch) read(s *udpSocket, from int) (int, error) {
	n := batchSize - from
	for i := from; i < batchSize; i++ {
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(len(b.bufs[i]))
		h := &b.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.addrs[i]))
		h.Namelen = uint32(unsafe.Sizeof(b.addrs[i]))
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
		h.Flags = 0
	}
	for {
		r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(s.fd),
			uintptr(unsafe.Pointer(&b.hdrs[from])), uintptr(n), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, nil
		case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH:
			// An ICMP error for an earlier send, queued on the socket;
			// reading it cleared it. Report it and go on.
			return 0, os.NewSyscallError("recvmmsg", errno)
		default:
			return 0, os.NewSyscallError("recvmmsg", errno)
		}
	}
}

// datagram returns the i-th datagram read and where it came from.
func (b *recvBatch) datagram(i int) ([]byte, netip.AddrPort) {
	return b.bufs[i][:b.hdrs[i].Len], getRawAddr(&b.addrs[i])
}

// sendBatch collects outgoing datagrams so that those for one socket go out
// in one sendmmsg. Payloads are copied into arena, so the caller's buffer
// is free as soon as add returns.
//
// Consecutive datagrams of the same size for the same address (an echo,
// a broadcast to one client, a burst of game state) leave as one
// "segmented" send (UDP generic segmentation offload, Linux 4.18+): the
// kernel walks its send path once for the lot and cuts it into the same
// datagrams on the way, so the peer receives exactly what it would have
// otherwise. A socket whose route cannot do it falls back to one
// datagram at a time.
type sendBatch struct {
	// The datagrams, one entry each, in the order they were sent.
	iovs  [batchSize]unix.Iovec
	addrs [batchSize]rawAddr
	alens [batchSize]uint32
	socks [batchSize]*udpSocket
	n     int
	arena []byte

	// What flush hands to sendmmsg: one message per datagram, or per run
	// of datagrams sent segmented.
	wire     [batchSize]unix.Mmsghdr
	wireIovs [batchSize]unix.Iovec
	wireCmsg [batchSize][32]byte // room for one control message of 2 bytes
	wireLen  [batchSize]int      // datagrams in each wire message
}

const sendArenaSize = 256 << 10

// Limits of a segmented send: the kernel takes at most 64 segments and
// 64 KiB; the size of one must fit the path's MTU, which for a remote
// peer we do not know, so only small datagrams are joined (on loopback
// any size would do).
const (
	maxSegments      = 64
	maxSegmentedSize = 60 << 10
	maxSegmentSize   = 1200
)

// segmentCmsgSpace is the room a UDP_SEGMENT control message takes.
var segmentCmsgSpace = unix.CmsgSpace(2)

func newSendBatch() *sendBatch {
	return &sendBatch{arena: make([]byte, 0, sendArenaSize)}
}

// room reports whether a datagram of size bytes fits without a flush.
func (b *sendBatch) room(size int) bool {
	return b.n < batchSize && len(b.arena)+size <= cap(b.arena)
}

// add queues p for s to send to to. The caller has checked room.
func (b *sendBatch) add(s *udpSocket, to netip.AddrPort, p []byte) {
	i := b.n
	b.n++
	start := len(b.arena)
	b.arena = append(b.arena, p...)
	b.socks[i] = s
	b.alens[i] = putRawAddr(&b.addrs[i], s.family, to)
	if len(p) > 0 {
		b.iovs[i].Base = &b.arena[start]
	} else {
		b.iovs[i].Base = nil
	}
	b.iovs[i].SetLen(len(p))
}

// flush sends everything queued, one sendmmsg per run of datagrams for the
// same socket, and empties the batch. failed is called for each datagram
// the kernel refused; a full socket buffer counts as refused, as a UDP
// datagram the kernel could not take is lost anyway.
func (b *sendBatch) flush(failed func(s *udpSocket, err error)) {
	for i := 0; i < b.n; {
		s := b.socks[i]
		j := i + 1
		for j < b.n && b.socks[j] == s {
			j++
		}
		b.sendRun(s, i, j, failed)
		i = j
	}
	clear(b.socks[:b.n])
	b.n = 0
	b.arena = b.arena[:0]
}

// sendRun sends datagrams i..j-1, all from s.
func (b *sendBatch) sendRun(s *udpSocket, i, j int, failed func(s *udpSocket, err error)) {
	for i < j {
		w := b.pack(s, i, j)
		sent := 0
		for sent < w {
			r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd),
				uintptr(unsafe.Pointer(&b.wire[sent])), uintptr(w-sent), unix.MSG_DONTWAIT, 0, 0)
			switch {
			case errno == unix.EINTR:
				continue
			case errno != 0 && b.wireLen[sent] > 1 && (errno == unix.EIO || errno == unix.EINVAL):
				// The route cannot segment: send this socket's datagrams
				// one by one from here on, starting with these.
				s.noSegments = true
			case errno != 0:
				// The first message failed; count its datagrams and carry
				// on with the rest.
				for k := 0; k < b.wireLen[sent]; k++ {
					failed(s, os.NewSyscallError("sendmmsg", errno))
				}
				i += b.wireLen[sent]
				sent++
				continue
			default:
				for k := sent; k < sent+int(r); k++ {
					i += b.wireLen[k]
				}
				sent += int(r)
				continue
			}
			break // s.noSegments changed: pack again from i
		}
	}
}

// pack fills b.wire with the messages for datagrams i..j-1 of socket s
// and returns how many it made.
func (b *sendBatch) pack(s *udpSocket, i, j int) int {
	w := 0
	for i < j {
		n, size := 1, b.iovs[i].Len
		if !s.noSegments && size > 0 && size <= maxSegmentSize {
			total := size
			for k := i + 1; k < j && n < maxSegments && b.iovs[k].Len == size &&
				total+size <= maxSegmentedSize && b.sameAddr(i, k); k++ {
				n++
				total += size
			}
		}
		h := &b.wire[w].Hdr
		*h = unix.Msghdr{}
		h.Name = (*byte)(unsafe.Pointer(&b.addrs[i]))
		h.Namelen = b.alens[i]
		b.wireIovs[w] = b.iovs[i] // the n datagrams lie one after another in arena
		b.wireIovs[w].SetLen(int(size) * n)
		h.Iov = &b.wireIovs[w]
		h.SetIovlen(1)
		if n > 1 {
			cm := (*unix.Cmsghdr)(unsafe.Pointer(&b.wireCmsg[w][0]))
			cm.Level = unix.SOL_UDP
			cm.Type = unix.UDP_SEGMENT
			cm.SetLen(unix.CmsgLen(2))
			*(*uint16)(unsafe.Pointer(&b.wireCmsg[w][unix.CmsgLen(0)])) = uint16(size)
			h.Control = &b.wireCmsg[w][0]
			h.SetControllen(segmentCmsgSpace)
		}
		b.wireLen[w] = n
		w++
		i += n
	}
	return w
}

func (b *sendBatch) sameAddr(i, k int) bool {
	return b.alens[i] == b.alens[k] && b.addrs[i] == b.addrs[k]
}

// poller waits until one of an endpoint's sockets is readable. A server
// has many sockets and uses epoll; a client has one and uses poll, so that
// a process with thousands of client endpoints needs no epoll descriptor
// for each.
type poller struct {
	epfd   int // -1 until the endpoint has more than one socket
	events [batchSize]unix.EpollEvent
	single int // the fd to poll while epfd is -1
}

func newPoller() *poller { return &poller{epfd: -1, single: -1} }

func (p *poller) add(s *udpSocket, multi bool) error {
	if !multi {
		p.single = s.fd
		return nil
	}
	if p.epfd < 0 {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return os.NewSyscallError("epoll_create1", err)
		}
		p.epfd = fd
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(s.slot)}
	return os.NewSyscallError("epoll_ctl", unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, s.fd, &ev))
}

func (p *poller) remove(s *udpSocket) {
	if p.epfd >= 0 {
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, s.fd, nil)
	}
	if p.single == s.fd {
		p.single = -1
	}
}

// wait blocks up to d for a socket to become readable and returns the
// slots of the readable sockets (for a single socket, slot 0). d <= 0
// does not block.
func (p *poller) wait(d time.Duration, ready []int) ([]int, error) {
	var deadline time.Time
	if d > 0 {
		deadline = time.Now().Add(d)
	}
	for {
		ms := 0
		if d > 0 {
			ms = int((time.Until(deadline) + time.Millisecond - 1) / time.Millisecond)
			if ms <= 0 {
				return ready, nil
			}
		}
		n, errno := p.waitOnce(ms)
		switch errno {
		case 0:
			if p.epfd < 0 {
				if n > 0 {
					ready = append(ready, 0)
				}
				return ready, nil
			}
			for _, ev := range p.events[:n] {
				ready = append(ready, int(ev.Fd))
			}
			return ready, nil
		case unix.EINTR:
			// A signal, most often the runtime's preemption: it has had
			// its way by now; wait out the rest.
			if d <= 0 {
				return ready, nil
			}
		default:
			return ready, os.NewSyscallError("poll", errno)
		}
	}
}

// waitOnce makes one wait of up to ms milliseconds.
func (p *poller) waitOnce(ms int) (int, unix.Errno) {
	if p.epfd >= 0 {
		return epollWait(p.epfd, p.events[:], ms)
	}
	if p.single < 0 { // no socket yet: only time passes
		if ms > 0 {
			time.Sleep(time.Duration(ms) * time.Millisecond)
		}
		return 0, 0
	}
	fds := [1]unix.PollFd{{Fd: int32(p.single), Events: unix.POLLIN}}
	return poll(fds[:], ms)
}

// epollWait and poll wait with RawSyscall, not Syscall, on purpose. The Go
// runtime takes a goroutine that stays in a Syscall for more than 20 µs
// as blocked: it hands its processor on, and its monitor thread wakes up
// every 20 µs or so while this goes on. For a loop that waits 10 ms at a
// time, a hundred times a second, that monitoring cost more than the
// loop itself (1.2 % of a core for an idle client). A raw wait is not
// seen as blocked, and nothing else is lost: the runtime's preemption
// signal interrupts the wait (EINTR), the goroutine yields at its next
// function call, and wait goes on waiting; so the garbage collector and
// other goroutines never wait long.
func epollWait(epfd int, events []unix.EpollEvent, ms int) (int, unix.Errno) {
	r, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd),
		uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(ms), 0, 0)
	return int(r), errno
}

func poll(fds []unix.PollFd, ms int) (int, unix.Errno) {
	ts := unix.NsecToTimespec(int64(ms) * int64(time.Millisecond))
	r, _, errno := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])),
		uintptr(len(fds)), uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	return int(r), errno
}

func (p *poller) close() {
	if p.epfd >= 0 {
		unix.Close(p.epfd)
		p.epfd = -1
	}
}
