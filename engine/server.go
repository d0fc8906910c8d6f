package engine

import (
	"net/netip"
	"time"
)

// This file is the server's side of the handshake: HELLOs on the
// listening socket, the data sockets offered for them, and the limits that
// keep a flood of HELLOs from exhausting the server.

// hello handles a datagram on a server's listening socket.
func (e *Endpoint) hello(now time.Time, from netip.AddrPort, b []byte) {
	d := Parse(b)
	if d.Kind != KindHello {
		e.stats.Dropped++
		return
	}
	// Every HELLO gets an answer; answers to unverified sources are
	// rate-limited.
	if e.cfg.HelloRate > 0 && (e.cfg.LimitLoopback || !from.Addr().IsLoopback()) &&
		!e.limiter.allow(from.Addr(), now, e.cfg.HelloRate, e.cfg.HelloBurst) {
		e.stats.Dropped++
		e.stats.RateLimited++
		return
	}
	if string(d.Token) != e.cfg.Token {
		e.sendWord(e.listener, from, wordGoAway)
		e.emit(Event{Kind: EventBadToken, Data: b, Addr: from})
		return
	}
	if c := e.byPeer[from]; c != nil {
		// A repeat: the client lost our answer. Same socket, same answer.
		e.sendConnectTo(c)
		return
	}
	if len(e.halfOpen) >= e.cfg.MaxHalfOpen && !e.evictOldestHalfOpen(now) {
		e.deferHello(now, from, b)
		return
	}
	e.admit(now, now, from, b)
}

// admit opens a data socket for the client at from, whose HELLO b came at
// helloAt and was accepted, and offers it: "CONNECT <ip> <port>". The
// connect timeout counts from the HELLO, so that a HELLO that waited in
// the backlog does not hold a socket longer.
func (e *Endpoint) admit(now, helloAt time.Time, from netip.AddrPort, b []byte) {
	if e.cfg.MaxClients > 0 && len(e.byPeer) >= e.cfg.MaxClients {
		e.sendWord(e.listener, from, wordGoAway)
		e.emit(Event{Kind: EventMaxClients, Data: b, Addr: from})
		return
	}
	// The data socket listens where S does; when S listens everywhere,
	// announce the address the client reached us at.
	bindIP := e.listener.local.Addr()
	announce := bindIP
	if bindIP.IsUnspecified() {
		ip, err := routeFrom(from)
		if err != nil {
			e.stats.Dropped++
			return
		}
		announce = ip
	}
	s, err := openUDP(netip.AddrPortFrom(bindIP, 0))
	if err == nil {
		err = e.addSocket(s, true)
		if err != nil {
			s.close()
		}
	}
	if err != nil {
		e.stats.Dropped++
		e.debugf("HELLO from %v: cannot open a data socket: %v", from, err)
		return
	}
	c := e.newConn(s, true)
	c.peer = from
	c.local = netip.AddrPortFrom(announce, s.local.Port())
	e.byPeer[from] = c
	e.sendConnectTo(c)
	e.emit(Event{Kind: EventNewClient, Conn: c, Data: b, Addr: from, Local: c.local})
	c.startServer(now, helloAt)
}

// pendingHello is a HELLO that found the half-open sockets at their cap;
// it waits in the backlog for room.
type pendingHello struct {
	from  netip.AddrPort
	hello []byte // a copy of the datagram, for EventNewClient
	at    time.Time
}

// deferHello puts a HELLO in the backlog. A crowd of real clients arriving
// at once is then let in as fast as the ones before them claim their
// sockets, rather than a retry interval at a time. The backlog holds no
// socket, is bounded (the oldest goes first), and keeps one entry per
// address; under a flood it just turns over.
func (e *Endpoint) deferHello(now time.Time, from netip.AddrPort, b []byte) {
	if e.inBacklog == nil {
		e.inBacklog = make(map[netip.AddrPort]struct{})
	}
	if _, ok := e.inBacklog[from]; ok {
		return // a retry; it keeps its place
	}
	if len(e.backlog) >= backlogFactor*e.cfg.MaxHalfOpen {
		e.dropFromBacklog()
		e.stats.Dropped++
		e.stats.Crowded++
	}
	e.backlog = append(e.backlog, pendingHello{from: from, hello: append([]byte(nil), b...), at: now})
	e.inBacklog[from] = struct{}{}
}

// backlogFactor sizes the backlog of HELLOs against MaxHalfOpen.
const backlogFactor = 4

func (e *Endpoint) dropFromBacklog() pendingHello {
	p := e.backlog[0]
	e.backlog[0] = pendingHello{}
	e.backlog = e.backlog[1:]
	delete(e.inBacklog, p.from)
	return p
}

// admitBacklog admits waiting HELLOs while there is room. Ones older than
// the connect timeout are forgotten: their clients have given up.
func (e *Endpoint) admitBacklog(now time.Time) {
	for len(e.backlog) > 0 && e.listener != nil {
		if len(e.halfOpen) >= e.cfg.MaxHalfOpen && !e.evictOldestHalfOpen(now) {
			return
		}
		p := e.dropFromBacklog()
		if now.Sub(p.at) >= e.cfg.ConnectTimeout {
			e.stats.Dropped++
			e.stats.Crowded++
			continue
		}
		if c := e.byPeer[p.from]; c != nil {
			continue // it got in meanwhile
		}
		e.admit(now, p.at, p.from, p.hello)
	}
}

// evictOldestHalfOpen gives back the socket of the oldest half-open
// connection, if it has waited for its CONNECT longer than the grace
// period, and reports whether it did. Under a flood of forged HELLOs this
// keeps the sockets at the cap while real clients still get in: a real
// client claims its socket within a round trip, inside the grace period,
// and one that did not will send HELLO again. A crowd of real clients
// arriving at once gets in as fast as it claims its sockets; the HELLOs
// that find no room are dropped, and retried.
func (e *Endpoint) evictOldestHalfOpen(now time.Time) bool {
	if len(e.halfOpen) == 0 || now.Sub(e.halfOpen[0].offered) < e.cfg.HalfOpenGrace {
		return false
	}
	e.stats.Evicted++
	e.halfOpen[0].finish(0, nil) // leaves e.halfOpen through stateChanged
	return true
}

func (e *Endpoint) sendConnectTo(c *Conn) {
	var buf [64]byte
	e.send(e.listener, c.peer, appendConnectTo(buf[:0], c.local))
}

func (e *Endpoint) sendWord(s *udpSocket, to netip.AddrPort, w string) {
	var buf [16]byte
	e.send(s, to, append(buf[:0], w...))
}
