package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Handler receives the events of an Endpoint. It runs inside Step (and
// Close), on the caller's goroutine. It may call any method of the
// endpoint and its connections except Step. If it panics, the panic goes
// out of Step; the endpoint stays consistent, and the events not yet
// handled are handed out by the next Step.
type Handler func(ev *Event)

// Stats are the counters of an Endpoint.
type Stats struct {
	Sent       uint64 // datagrams sent, control and data
	Received   uint64 // datagrams received, control and data
	Dropped    uint64 // datagrams received and refused (strangers, malformed, not valid now)
	SendErrors uint64 // datagrams the operating system refused to send, and ICMP errors
	HalfOpen   int    // server: data sockets offered and not yet claimed
	Backlog    int    // server: HELLOs waiting for a half-open socket to be free
	Clients    int    // server: connected clients (client: 1 while connected)

	RateLimited uint64 // server: HELLOs not answered, as their source IP was over HelloRate
	Evicted     uint64 // server: half-open sockets given back early to make room
	Crowded     uint64 // server: HELLOs dropped as the half-open sockets and the backlog were full
	SimLost     uint64 // datagrams the conditioner (Simulation, Blackout) lost
}

// Endpoint is a UDPIPE server or client: its sockets, its connections and
// their timers. Make one with New, then call Listen or Connect, and call
// Step in a loop.
type Endpoint struct {
	cfg     Config
	handler Handler

	poll     *poller
	socks    []*udpSocket // by slot; nil where free
	free     []int        // free slots
	listener *udpSocket   // server: the listening socket S
	client   *Conn        // client: the connection
	byPeer   map[netip.AddrPort]*Conn
	timers   timerHeap

	events           []Event // reported but not yet handed to the handler
	evHead           int     // events before it are handed out
	dispatching      int     // depth of dispatch calls (Close in a handler nests one)
	rx               *recvBatch
	tx               *sendBatch
	ready            []int
	stepping         bool // inside Step: sends wait in tx for the end of the step
	closed           bool
	closeWasStepping bool // Close was called from a handler
	busy             bool // the last Step took in datagrams (see Config.SpinWait)

	halfOpen  []*Conn        // server: half-open connections, oldest first
	backlog   []pendingHello // server: HELLOs waiting for room, oldest first
	inBacklog map[netip.AddrPort]struct{}
	limiter   helloLimiter
	simulated *conditioner // nil unless a Simulation or a Blackout is on

	stats Stats
}

// Batches are big (a receive batch holds 64 buffers of 64 KiB) and an
// endpoint needs one only while it is reading or sending, so endpoints
// share them.
var (
	recvBatches = sync.Pool{New: func() any { return newRecvBatch() }}
	sendBatches = sync.Pool{New: func() any { return newSendBatch() }}
)

// New returns an endpoint that reports to h (which may be nil). Zero
// fields of cfg take their defaults.
func New(cfg Config, h Handler) *Endpoint {
	return &Endpoint{
		cfg:     cfg.withDefaults(),
		handler: h,
		poll:    newPoller(),
		byPeer:  make(map[netip.AddrPort]*Conn),
	}
}

// Config returns the endpoint's settings, with the defaults filled in.
func (e *Endpoint) Config() Config { return e.cfg }

// SetConfig changes the settings; zero fields take their defaults. New
// timings apply to the connections at once.
func (e *Endpoint) SetConfig(cfg Config) {
	e.cfg = cfg.withDefaults()
	now := e.cfg.Clock.Now()
	for _, s := range e.socks {
		if s != nil && s.conn != nil {
			e.wake(s.conn, now)
		}
	}
}

// Stats returns the endpoint's counters.
func (e *Endpoint) Stats() Stats {
	s := e.stats
	s.Backlog = len(e.backlog)
	return s
}

// Listen makes the endpoint a server on addr (host:port; an empty host is
// every interface, port 0 picks a free port).
func (e *Endpoint) Listen(addr string) error {
	if e.closed {
		return errors.New("udpipe: listen: endpoint closed")
	}
	if e.listener != nil || e.client != nil {
		return errors.New("udpipe: listen: endpoint already in use")
	}
	ap, err := resolve(addr)
	if err != nil {
		return &net.OpError{Op: "listen", Net: "udp", Err: err}
	}
	s, err := openUDP(ap)
	if err != nil {
		return opError("listen", ap, err)
	}
	if err := e.addSocket(s, true); err != nil {
		s.close()
		return opError("listen", ap, err)
	}
	e.listener = s
	e.debugf("listening on %v", s.local)
	return nil
}

// Addr returns the address of the listening socket (server), or of the
// client's socket.
func (e *Endpoint) Addr() netip.AddrPort {
	if e.listener != nil {
		return e.listener.local
	}
	if e.client != nil {
		return e.client.local
	}
	return netip.AddrPort{}
}

// Connect makes the endpoint a client of the server at addr (host:port;
// the host may be a name). The handshake runs in Step; EventConnect says
// it is done. A client that connects again drops its previous connection
// (with EventClose if it was still open).
func (e *Endpoint) Connect(addr string) (*Conn, error) {
	if e.closed {
		return nil, errors.New("udpipe: connect: endpoint closed")
	}
	if e.listener != nil {
		return nil, errors.New("udpipe: connect: endpoint is a server")
	}
	server, err := resolve(addr)
	if err != nil {
		return nil, &net.OpError{Op: "connect", Net: "udp", Err: err}
	}
	if server.Port() == 0 || server.Addr().IsUnspecified() {
		return nil, opError("connect", server, errors.New("no server at this address"))
	}
	if old := e.client; old != nil {
		old.Close()
		old.finish(EventClose, nil)
	}
	local := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	if !server.Addr().Is4() {
		local = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
	}
	s, err := openUDP(local)
	if err != nil {
		return nil, opError("connect", server, err)
	}
	if err := e.addSocket(s, false); err != nil {
		s.close()
		return nil, opError("connect", server, err)
	}
	c := e.newConn(s, false)
	c.server = server
	c.token = e.cfg.Token
	e.client = c
	c.startClient(e.cfg.Clock.Now())
	e.flushIfIdle()
	return c, nil
}

// resolve turns "host:port" into an address, looking the host up if it is
// a name. An empty host is the IPv4 wildcard.
func resolve(addr string) (netip.AddrPort, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port %q", portStr)
	}
	if host == "" || host == "*" {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(port)), nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(ip.Unmap(), uint16(port)), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.AddrPort{}, err
	}
	// Prefer IPv4, as the original (LuaSocket's udp) did.
	best := ips[0]
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			best = ip
			break
		}
	}
	return netip.AddrPortFrom(best.Unmap(), uint16(port)), nil
}

// Conns returns the open connections (server: connected clients; client:
// its connection once connected).
func (e *Endpoint) Conns() []*Conn {
	var out []*Conn
	for _, s := range e.socks {
		if s != nil && s.conn != nil && s.conn.state == StateConnected {
			out = append(out, s.conn)
		}
	}
	return out
}

// Client returns the client's connection, or nil on a server.
func (e *Endpoint) Client() *Conn { return e.client }

// Step handles what has arrived and what is due, waiting up to timeout
// when there is nothing: it reads every waiting datagram, runs the
// timers, hands the events to the handler, and sends what the handler
// sent. It returns as soon as it has handled something.
func (e *Endpoint) Step(timeout time.Duration) (err error) {
	if e.stepping {
		return errors.New("udpipe: step: called from inside a handler")
	}
	e.stepping = true
	defer e.endStep()

	e.dispatch() // left over from a handler that panicked
	if e.closed {
		return errors.New("udpipe: step: endpoint closed")
	}
	handled, err := e.readWaiting(0)
	if err != nil {
		return err
	}
	e.sendDelayed()
	e.runTimers()
	if len(e.backlog) > 0 {
		e.admitBacklog(e.cfg.Clock.Now())
	}
	if handled || e.evHead < len(e.events) || timeout <= 0 {
		e.busy = handled
		e.dispatch()
		return nil
	}
	// Nothing yet: wait for a datagram, but no longer than the next timer.
	wait := timeout
	now := e.cfg.Clock.Now()
	if at, ok := e.timers.next(); ok {
		wait = min(wait, max(at.Sub(now), 0))
	}
	if e.simulated != nil {
		if at, ok := e.simulated.next(); ok {
			wait = min(wait, max(at.Sub(now), 0))
		}
	}
	if len(e.backlog) > 0 && len(e.halfOpen) > 0 {
		// Room comes when the oldest half-open socket's grace is over.
		wait = min(wait, max(e.halfOpen[0].offered.Add(e.cfg.HalfOpenGrace).Sub(now), 0))
	}
	e.flushSends() // nothing may sit unsent while we sleep
	if e.busy && e.cfg.SpinWait > 0 {
		// Traffic is flowing: the peer's answer to what we just sent is
		// likely microseconds away. Going to sleep now and being woken
		// for it costs more than the wait itself (and on an idle core,
		// tens of microseconds), so look again for a little while first.
		spinUntil := time.Now().Add(min(e.cfg.SpinWait, wait))
		for !handled && time.Now().Before(spinUntil) {
			if handled, err = e.readWaiting(0); err != nil {
				return err
			}
		}
		if handled {
			e.sendDelayed()
			e.runTimers()
			e.dispatch()
			return nil
		}
	}
	handled, err = e.readWaiting(wait)
	if err != nil {
		return err
	}
	e.busy = handled
	e.sendDelayed()
	e.runTimers()
	e.dispatch()
	return nil
}

// endStep runs when Step returns, also by a panic from the handler.
func (e *Endpoint) endStep() {
	e.flushSends()
	if e.evHead == len(e.events) {
		e.releaseRecvBatch()
	}
	e.stepping = false
}

// readWaiting takes in the datagrams waiting on the sockets, after waiting
// up to wait for the first. Datagrams are handed to their connections
// batch by batch; between batches the events are dispatched, because they
// point into the batch's buffers. It reports whether it took anything in.
func (e *Endpoint) readWaiting(wait time.Duration) (bool, error) {
	handled := false
	// Bound the rounds so that a flood cannot keep Step from returning.
	for round := 0; round < 64 && !e.closed; round++ {
		var err error
		e.ready, err = e.poll.wait(wait, e.ready[:0])
		if err != nil {
			return handled, err
		}
		wait = 0
		if len(e.ready) == 0 {
			break
		}
		n := e.readReady()
		if n == 0 {
			break
		}
		handled = true
		if len(e.backlog) > 0 {
			e.admitBacklog(e.cfg.Clock.Now())
		}
		e.dispatch()
		if n < batchSize {
			break
		}
	}
	return handled, nil
}

// readReady reads from the ready sockets into one batch and hands each
// datagram to its connection. It returns how many it read.
func (e *Endpoint) readReady() int {
	if e.rx == nil {
		e.rx = recvBatches.Get().(*recvBatch)
	}
	now := e.cfg.Clock.Now()
	total := 0
	// The listening socket goes last: a CONNECT that claims a half-open
	// socket is taken in before more HELLOs can crowd it out.
	if e.listener != nil {
		if i := slices.Index(e.ready, e.listener.slot); i >= 0 && i < len(e.ready)-1 {
			e.ready = append(append(e.ready[:i], e.ready[i+1:]...), e.listener.slot)
		}
	}
	for _, slot := range e.ready {
		if total == batchSize {
			break // the rest stay readable for the next round
		}
		if slot >= len(e.socks) || e.socks[slot] == nil {
			continue
		}
		s := e.socks[slot]
		n, err := e.rx.read(s, total)
		if err != nil {
			// An ICMP error for something sent earlier, or a broken
			// socket: either way count it and carry on.
			e.stats.SendErrors++
			e.debugf("%v: %v", s.local, err)
		}
		for i := total; i < total+n; i++ {
			b, from := e.rx.datagram(i)
			if e.simulated != nil && e.simulated.dropIncoming(now) {
				e.stats.SimLost++
				e.debugf("recv %v <- %v lost (simulated)", s.local, from)
				continue
			}
			e.receive(now, s, from, b)
		}
		total += n
	}
	return total
}

// receive hands one datagram to whoever owns the socket.
func (e *Endpoint) receive(now time.Time, s *udpSocket, from netip.AddrPort, b []byte) {
	e.stats.Received++
	if e.cfg.Debug != nil {
		e.debugf("recv %v <- %v %s", s.local, from, quote(b))
	}
	if len(b) > MaxDatagram {
		e.stats.Dropped++ // cannot be a whole UDPIPE datagram
		return
	}
	if s.conn != nil {
		dropped := s.conn.stats.Dropped
		s.conn.receive(now, from, b)
		e.stats.Dropped += s.conn.stats.Dropped - dropped
		return
	}
	if s == e.listener {
		e.hello(now, from, b)
	}
}

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
	if e.stats.HalfOpen >= e.cfg.MaxHalfOpen && !e.evictOldestHalfOpen(now) {
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
	c.startServer(now)
	if helloAt.Before(now) {
		c.opened = helloAt
		e.wake(c, helloAt.Add(e.cfg.ConnectTimeout))
	}
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
		if e.stats.HalfOpen >= e.cfg.MaxHalfOpen && !e.evictOldestHalfOpen(now) {
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

func (e *Endpoint) newConn(s *udpSocket, server bool) *Conn {
	c := &Conn{t: e, cfg: &e.cfg, isServer: server, sock: s, local: s.local}
	s.conn = c
	return c
}

// addSocket gives s a slot and puts it in the poller.
func (e *Endpoint) addSocket(s *udpSocket, multi bool) error {
	if n := len(e.free); n > 0 {
		s.slot = e.free[n-1]
		e.free = e.free[:n-1]
		e.socks[s.slot] = s
	} else {
		s.slot = len(e.socks)
		e.socks = append(e.socks, s)
	}
	if err := e.poll.add(s, multi); err != nil {
		e.socks[s.slot] = nil
		e.free = append(e.free, s.slot)
		return err
	}
	return nil
}

func (e *Endpoint) removeSocket(s *udpSocket) {
	if s.slot >= len(e.socks) || e.socks[s.slot] != s {
		return
	}
	e.flushSends() // what this socket was about to send goes first
	e.poll.remove(s)
	s.close()
	e.socks[s.slot] = nil
	e.free = append(e.free, s.slot)
}

// runTimers ticks every connection whose time has come.
func (e *Endpoint) runTimers() {
	now := e.cfg.Clock.Now()
	for {
		at, ok := e.timers.next()
		if !ok || at.After(now) {
			return
		}
		entry := e.timers.pop()
		c := entry.conn
		if !c.wakeAt.Equal(entry.at) || c.state == StateClosed {
			continue // superseded by an earlier entry, or over
		}
		c.wakeAt = time.Time{}
		c.tick(now)
	}
}

// dispatch hands the pending events to the handler, oldest first. An
// event is taken off the queue before its handler runs, so a panicking
// handler does not see it twice. The handler gets a pointer into the
// queue (no copy to the heap); the queue is only rewound by the outermost
// dispatch, so a handler that causes a nested dispatch (by calling Close)
// still reads its own event.
func (e *Endpoint) dispatch() {
	e.dispatching++
	defer func() { e.dispatching-- }()
	for e.evHead < len(e.events) {
		ev := &e.events[e.evHead]
		e.evHead++
		if e.handler != nil {
			e.handler(ev)
		}
	}
	if e.dispatching == 1 {
		clear(e.events)
		e.events, e.evHead = e.events[:0], 0
	}
}

func (e *Endpoint) releaseRecvBatch() {
	if e.rx != nil {
		recvBatches.Put(e.rx)
		e.rx = nil
	}
}

// send queues a datagram on s. Inside Step it waits for the end of the
// step, to go out in one batch with the others; outside, it goes at once.
func (e *Endpoint) send(s *udpSocket, to netip.AddrPort, b []byte) {
	if !s.canReach(to) {
		e.stats.SendErrors++
		e.debugf("send from %v to %v: address family not supported", s.local, to)
		return
	}
	e.stats.Sent++
	if e.cfg.Debug != nil {
		e.debugf("send %v -> %v %s", s.local, to, quote(b))
	}
	if e.simulated != nil {
		e.sendSimulated(s, to, b)
		return
	}
	e.sendNow(s, to, b)
}

// sendNow queues a datagram for the kernel (see send).
func (e *Endpoint) sendNow(s *udpSocket, to netip.AddrPort, b []byte) {
	if e.tx == nil {
		e.tx = sendBatches.Get().(*sendBatch)
	} else if !e.tx.room(len(b)) {
		e.tx.flush(e.sendFailed)
	}
	e.tx.add(s, to, b)
	if !e.stepping {
		e.flushSends()
	}
}

func (e *Endpoint) flushIfIdle() {
	if !e.stepping {
		e.flushSends()
	}
}

func (e *Endpoint) flushSends() {
	if e.tx == nil {
		return
	}
	e.tx.flush(e.sendFailed)
	sendBatches.Put(e.tx)
	e.tx = nil
}

func (e *Endpoint) sendFailed(s *udpSocket, err error) {
	e.stats.SendErrors++
	e.debugf("send from %v failed: %v", s.local, err)
}

// The transport of the connections' state machines.

func (e *Endpoint) transmit(c *Conn, to netip.AddrPort, b []byte) { e.send(c.sock, to, b) }

func (e *Endpoint) emit(ev Event) { e.events = append(e.events, ev) }

func (e *Endpoint) wake(c *Conn, t time.Time) {
	if c.wakeAt.IsZero() || t.Before(c.wakeAt) {
		c.wakeAt = t
		e.timers.push(timerEntry{at: t, conn: c})
	}
}

func (e *Endpoint) stateChanged(c *Conn, from State) {
	switch {
	case c.isServer && c.state == StateConnecting:
		e.stats.HalfOpen++
		e.halfOpen = append(e.halfOpen, c)
	case c.isServer && from == StateConnecting:
		e.stats.HalfOpen--
		if i := slices.Index(e.halfOpen, c); i >= 0 {
			e.halfOpen = slices.Delete(e.halfOpen, i, i+1)
		}
	}
	if c.state == StateConnected {
		e.stats.Clients++
	} else if from == StateConnected {
		e.stats.Clients--
	}
}

func (e *Endpoint) release(c *Conn) {
	if c.isServer && e.byPeer[c.peer] == c {
		delete(e.byPeer, c.peer)
	}
	e.removeSocket(c.sock)
}

func (e *Endpoint) debugf(format string, args ...any) {
	if e.cfg.Debug != nil {
		fmt.Fprintf(e.cfg.Debug, "udpipe: "+format+"\n", args...)
	}
}

// quote renders a datagram for debugging output, shortened if long.
func quote(b []byte) string {
	const max = 48
	if len(b) > max {
		return fmt.Sprintf("%q... (%d bytes)", b[:max], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// Close ends every connection and gives back every socket. Open
// connections are sent CLOSE, and Close waits up to the close linger
// (real time, as it is about the real network) for their CLOSED, so
// that peers learn at once; each connection is reported with EventClose.
// The listening socket closes at once. After Close no socket remains.
func (e *Endpoint) Close() error {
	CloseAll(e)
	return nil
}

// CloseAll closes several endpoints as Close does, with their lingers at
// the same time rather than one after the other; endpoints of one process
// that are each other's peers answer each other's CLOSE meanwhile. A
// program that ends closes all its endpoints this way.
func CloseAll(eps ...*Endpoint) {
	var closing []*Endpoint
	for _, e := range eps {
		if e != nil && !e.closed {
			e.beginClose()
			closing = append(closing, e)
		}
	}
	lingerAll(closing)
	for _, e := range closing {
		e.endClose()
	}
	// The handlers run last, when every socket is already closed.
	for _, e := range closing {
		e.stepping = e.closeWasStepping
		e.dispatch()
	}
}

// beginClose closes the listening socket and sends CLOSE on every open
// connection. Connections that were not open end at once.
func (e *Endpoint) beginClose() {
	e.closed = true
	e.closeWasStepping = e.stepping
	e.stepping = true // batch the CLOSEs
	if e.listener != nil {
		e.removeSocket(e.listener)
		e.listener = nil
	}
	e.backlog, e.inBacklog = nil, nil
	for _, s := range e.socks {
		if s == nil || s.conn == nil {
			continue
		}
		c := s.conn
		if c.isServer && c.state == StateConnecting {
			c.finish(0, nil) // never reported as open; nobody to tell
			continue
		}
		c.Close()
	}
	e.flushSends()
}

// lingerAll waits for the CLOSED answers of the connections being closed,
// re-sending CLOSE a few times, until all came or the longest linger is
// over. Only closing connections are left, so what arrives can only end
// them: no event carries data from the receive batch.
func lingerAll(eps []*Endpoint) {
	var linger time.Duration
	for _, e := range eps {
		linger = max(linger, e.cfg.CloseLinger)
	}
	deadline := time.Now().Add(linger)
	nextResend := make([]time.Time, len(eps))
	for {
		busy := false
		for i, e := range eps {
			if !e.anyClosing() {
				continue
			}
			busy = true
			// One endpoint can block on its poller; several take turns.
			wait := time.Duration(0)
			if len(eps) == 1 {
				wait = min(time.Until(deadline), time.Until(nextResend[i]))
			}
			e.ready, _ = e.poll.wait(wait, e.ready[:0])
			if len(e.ready) > 0 {
				// A batch of its own: when Close is called from a handler,
				// that handler's event may point into e.rx.
				inUse := e.rx
				e.rx = nil
				e.readReady()
				e.releaseRecvBatch()
				e.rx = inUse
				continue
			}
			if now := time.Now(); !now.Before(nextResend[i]) {
				if !nextResend[i].IsZero() {
					e.resendClose()
				}
				nextResend[i] = now.Add(e.cfg.CloseLinger / time.Duration(e.cfg.CloseRetries+1))
			}
		}
		if !busy || !time.Now().Before(deadline) {
			return
		}
		if len(eps) > 1 {
			time.Sleep(time.Millisecond)
		}
	}
}

func (e *Endpoint) resendClose() {
	for _, s := range e.socks {
		if s != nil && s.conn != nil && s.conn.state == StateClosing {
			s.conn.transmitWord(wordClose)
		}
	}
	e.flushSends()
}

// endClose ends the connections still waiting for CLOSED and gives back
// what is left.
func (e *Endpoint) endClose() {
	for _, s := range e.socks {
		if s != nil && s.conn != nil {
			s.conn.finish(EventClose, nil)
		}
	}
	e.flushSends()
	e.poll.close()
	if !e.closeWasStepping {
		// Inside Step, the handler that called Close may still be reading
		// its event's data from the batch; endStep gives it back.
		e.releaseRecvBatch()
	}
}

func (e *Endpoint) anyClosing() bool {
	for _, s := range e.socks {
		if s != nil && s.conn != nil && s.conn.state == StateClosing {
			return true
		}
	}
	return false
}

// Closed reports whether Close was called.
func (e *Endpoint) Closed() bool { return e.closed }

// SetSimulation puts a simulated bad network between the endpoint and the
// real one (see Simulation); nil takes it away. Datagrams being delayed
// still go out when due.
func (e *Endpoint) SetSimulation(sim *Simulation) {
	switch {
	case sim != nil:
		old := e.simulated
		e.simulated = newConditioner(*sim)
		if old != nil {
			e.simulated.blackoutUntil = old.blackoutUntil
			e.simulated.delayed = old.delayed
		}
	case e.simulated != nil && len(e.simulated.delayed) == 0 && !e.simulated.blackedOut(e.cfg.Clock.Now()):
		e.simulated = nil
	case e.simulated != nil:
		e.simulated.sim = Simulation{} // keep the blackout and the held datagrams
	}
}

// Blackout simulates an outage of the network: for d from now, every
// datagram sent or received is lost.
func (e *Endpoint) Blackout(d time.Duration) {
	if e.simulated == nil {
		e.simulated = newConditioner(Simulation{})
	}
	e.simulated.blackoutUntil = e.cfg.Clock.Now().Add(d)
	e.debugf("blackout for %v", d)
}

// sendSimulated passes a datagram through the conditioner.
func (e *Endpoint) sendSimulated(s *udpSocket, to netip.AddrPort, b []byte) {
	now := e.cfg.Clock.Now()
	copies, delay := e.simulated.outgoing(now)
	if copies == 0 {
		e.stats.SimLost++
		e.debugf("send %v -> %v lost (simulated)", s.local, to)
		return
	}
	for i := 0; i < copies; i++ {
		if delay > 0 {
			e.simulated.hold(now.Add(delay), s, to, b)
		} else {
			e.sendNow(s, to, b)
		}
	}
}

// sendDelayed sends the datagrams the conditioner held that are due, if
// their socket is still open.
func (e *Endpoint) sendDelayed() {
	if e.simulated == nil {
		return
	}
	for _, d := range e.simulated.takeDue(e.cfg.Clock.Now()) {
		if d.sock.slot < len(e.socks) && e.socks[d.sock.slot] == d.sock {
			e.sendNow(d.sock, d.to, d.data)
		}
	}
}
