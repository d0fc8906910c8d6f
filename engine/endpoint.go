package engine

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
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
	s.HalfOpen = len(e.halfOpen)
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
// a name (package net prefers IPv4 for "udp", as LuaSocket's udp did). An
// empty host is the IPv4 wildcard.
func resolve(addr string) (netip.AddrPort, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ap := ua.AddrPort()
	if !ap.Addr().IsValid() {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), ap.Port()), nil
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
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
			e.debugf("an earlier send from %v failed: %v", s.local, err)
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
		if e.tx != nil && e.tx.n >= flushEvery {
			// Let the first answers go while the rest are worked out: the
			// peer starts on them meanwhile, instead of both sides taking
			// turns with whole batches.
			e.flushSends()
		}
	}
	if e.dispatching == 1 {
		clear(e.events)
		e.events, e.evHead = e.events[:0], 0
	}
}

// flushEvery is how many datagrams sent from handlers may wait for the
// end of the step. In the echo benchmark, flushing every 16 rather than
// once per step took the round trips from about 210k to 330k a second.
const flushEvery = 16

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
		e.halfOpen = append(e.halfOpen, c)
	case c.isServer && from == StateConnecting:
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

// opError wraps err the way package net does, naming the operation and
// the address: "listen udp 127.0.0.1:1234: bind: address already in use".
func opError(op string, addr netip.AddrPort, err error) error {
	return &net.OpError{Op: op, Net: "udp", Addr: net.UDPAddrFromAddrPort(addr), Err: err}
}
