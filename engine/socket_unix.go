//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package engine

import (
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// This file holds what the engine's sockets do alike on Linux and the
// BSDs (macOS among them): opening, addresses, closing. The batched
// reads and writes are in socket_linux.go, and their plain counterparts
// for the other systems in socket_bsd.go.

// udpSocket is one UDP socket of an endpoint.
type udpSocket struct {
	fd     int
	family int // unix.AF_INET or unix.AF_INET6
	local  netip.AddrPort
	slot   int   // index in Endpoint.socks, and the poller's key
	conn   *Conn // the connection it serves; nil for a server's listening socket

	noSegments bool // its route refused a segmented send (Linux, see sendBatch)
}

// socket opens a non-blocking UDP socket, closed on exec. (Linux could
// do it in one call with SOCK_NONBLOCK|SOCK_CLOEXEC; other systems cannot,
// and a socket is opened once per connection, so one way serves all.)
func socket(family int) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_DGRAM, unix.IPPROTO_UDP)
	if err != nil {
		return -1, err
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// openUDP opens a non-blocking UDP socket bound to laddr.
func openUDP(laddr netip.AddrPort) (*udpSocket, error) {
	family := unix.AF_INET
	if laddr.Addr().Is6() && !laddr.Addr().Is4In6() {
		family = unix.AF_INET6
	}
	fd, err := socket(family)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if family == unix.AF_INET6 && laddr.Addr().IsUnspecified() {
		// "::" takes IPv4 too, as a dual-stack socket.
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
	}
	// Room for bursts: a game server's clients talk at once.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 1<<20)
	if err := unix.Bind(fd, sockaddr(family, laddr)); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("bind", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("getsockname", err)
	}
	return &udpSocket{fd: fd, family: family, local: addrPortOf(sa)}, nil
}

// canReach reports whether s can send to addr: an IPv4 socket cannot
// reach an IPv6 address.
func (s *udpSocket) canReach(addr netip.AddrPort) bool {
	return s.family == unix.AF_INET6 || addr.Addr().Unmap().Is4()
}

func (s *udpSocket) close() error {
	return unix.Close(s.fd)
}

// routeFrom returns the local address the kernel would send from to reach
// to: the address a client can reach a wildcard-bound server at. It sends
// nothing.
func routeFrom(to netip.AddrPort) (netip.Addr, error) {
	family := unix.AF_INET
	if !to.Addr().Is4() {
		family = unix.AF_INET6
	}
	fd, err := socket(family)
	if err != nil {
		return netip.Addr{}, err
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, sockaddr(family, to)); err != nil {
		return netip.Addr{}, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.Addr{}, err
	}
	return addrPortOf(sa).Addr(), nil
}

func sockaddr(family int, ap netip.AddrPort) unix.Sockaddr {
	if family == unix.AF_INET {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().Unmap().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func addrPortOf(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// makeRecvBuffers gives every slot of a receive batch room for any
// datagram, and one byte more, which tells an oversized one.
func makeRecvBuffers(bufs *[batchSize][]byte) {
	for i := range bufs {
		bufs[i] = make([]byte, MaxDatagram+1)
	}
}
