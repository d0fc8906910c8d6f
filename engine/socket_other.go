//go:build !linux && !darwin && !dragonfly && !freebsd && !netbsd && !openbsd

package engine

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// This file is the I/O at the bottom of the engine on the systems that
// neither socket_linux.go nor socket_bsd.go serve: Windows, and the others
// Go runs on. It uses package net only. Each socket has a goroutine that
// reads it and queues what it reads; Step takes the queued datagrams as
// the other versions take them from the kernel. It is slower (a hand-off
// and a copy per datagram, one system call per datagram sent). Unlike the
// others, a datagram is in Step's reach only once that goroutine has read
// it, a moment after it arrived. The goroutine ends when its socket is
// closed, and close waits for it. No test runs it on this machine (Linux);
// it is compiled for Windows by the tests (see .ci/run).

// udpSocket is one UDP socket of an endpoint.
type udpSocket struct {
	c     *net.UDPConn
	ipv4  bool // an IPv4-only socket
	local netip.AddrPort
	slot  int   // index in Endpoint.socks, and the poller's key
	conn  *Conn // the connection it serves; nil for a server's listening socket

	poll *poller       // set when the reader starts
	done chan struct{} // closed when the reader has ended

	mu    sync.Mutex
	queue []received // read and not yet taken by Step
}

type received struct {
	data []byte
	from netip.AddrPort
}

// maxQueued bounds what a socket's reader holds for Step, as the kernel's
// receive buffer would: past it, datagrams are dropped.
const maxQueued = 4096

// openUDP opens a UDP socket bound to laddr.
func openUDP(laddr netip.AddrPort) (*udpSocket, error) {
	network := "udp"
	if laddr.Addr().Is4() {
		network = "udp4"
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(laddr))
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) {
			err = oe.Err // the caller names the operation and address
		}
		return nil, err
	}
	_ = c.SetReadBuffer(1 << 20)
	_ = c.SetWriteBuffer(1 << 20)
	local := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return &udpSocket{
		c:     c,
		ipv4:  network == "udp4",
		local: netip.AddrPortFrom(local.Addr().Unmap(), local.Port()),
	}, nil
}

// canReach reports whether s can send to addr: an IPv4 socket cannot
// reach an IPv6 address.
func (s *udpSocket) canReach(addr netip.AddrPort) bool {
	return !s.ipv4 || addr.Addr().Unmap().Is4()
}

// read runs on the socket's goroutine until the socket is closed.
func (s *udpSocket) read() {
	defer close(s.done)
	buf := make([]byte, MaxDatagram+1)
	for {
		n, from, err := s.c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // an ICMP error for an earlier send, on some systems
		}
		d := received{data: append([]byte(nil), buf[:n]...), from: netip.AddrPortFrom(from.Addr().Unmap(), from.Port())}
		s.mu.Lock()
		wasEmpty := len(s.queue) == 0
		if len(s.queue) < maxQueued {
			s.queue = append(s.queue, d)
		}
		s.mu.Unlock()
		if wasEmpty {
			s.poll.mark(s.slot)
		}
	}
}

func (s *udpSocket) close() error {
	err := s.c.Close()
	if s.done != nil {
		<-s.done
	}
	return err
}

// routeFrom returns the local address the system would send from to reach
// to: the address a client can reach a wildcard-bound server at. It sends
// nothing.
func routeFrom(to netip.AddrPort) (netip.Addr, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// recvBatch holds the datagrams of one read.
type recvBatch struct {
	bufs [batchSize][]byte
	from [batchSize]netip.AddrPort
}

func newRecvBatch() *recvBatch { return new(recvBatch) }

// read moves what s has queued into b[from:] and returns how many.
func (b *recvBatch) read(s *udpSocket, from int) (int, error) {
	s.mu.Lock()
	n := min(len(s.queue), batchSize-from)
	for i := 0; i < n; i++ {
		b.bufs[from+i], b.from[from+i] = s.queue[i].data, s.queue[i].from
	}
	left := copy(s.queue, s.queue[n:])
	clear(s.queue[left:])
	s.queue = s.queue[:left]
	s.mu.Unlock()
	if left > 0 {
		s.poll.mark(s.slot) // the rest is for the next round
	}
	return n, nil
}

// datagram returns the i-th datagram read and where it came from.
func (b *recvBatch) datagram(i int) ([]byte, netip.AddrPort) {
	return b.bufs[i], b.from[i]
}

// sendOne sends one datagram (see sendBatch in sendbatch_plain.go).
func sendOne(s *udpSocket, to netip.AddrPort, p []byte) error {
	_, err := s.c.WriteToUDPAddrPort(p, to)
	return err
}

// poller waits until one of an endpoint's sockets has datagrams queued.
type poller struct {
	mu     sync.Mutex
	ready  []int         // slots marked since the last wait
	notify chan struct{} // a token when ready becomes non-empty
}

func newPoller() *poller { return &poller{notify: make(chan struct{}, 1)} }

// add starts s's reader.
func (p *poller) add(s *udpSocket, multi bool) error {
	s.poll = p
	s.done = make(chan struct{})
	go s.read()
	return nil
}

func (p *poller) remove(s *udpSocket) {}

func (p *poller) mark(slot int) {
	p.mu.Lock()
	p.ready = append(p.ready, slot)
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

func (p *poller) take(ready []int) []int {
	p.mu.Lock()
	ready = append(ready, p.ready...)
	p.ready = p.ready[:0]
	p.mu.Unlock()
	return ready
}

// wait waits up to d for a socket to have datagrams and returns the slots
// of those that may have some. d <= 0 does not wait.
func (p *poller) wait(d time.Duration, ready []int) ([]int, error) {
	if ready = p.take(ready); len(ready) > 0 || d <= 0 {
		return ready, nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.notify:
	case <-t.C:
	}
	return p.take(ready), nil
}

func (p *poller) close() {}

// serverPollerFDs is how many descriptors a server's poller holds.
const serverPollerFDs = 0
