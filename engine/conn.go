package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"
)

// Errors that Send returns. They are runtime conditions, not mistakes in
// the call, so a script can react to them.
var (
	ErrClosed      = errors.New("connection closed")
	ErrNotOpen     = errors.New("connection not open yet")
	ErrQueueFull   = errors.New("send queue full")
	ErrTooLarge    = fmt.Errorf("message larger than %d bytes", MaxDatagram)
	ErrControlWord = errors.New("message is a control word of the protocol")
)

// State is where a connection is in its life.
type State uint8

// The states of a connection.
const (
	StateHello      State = iota // client: HELLO sent, waiting for CONNECT <ip> <port>
	StateConnecting              // client: CONNECT sent; server: waiting for CONNECT (half-open)
	StateConnected               // data flows
	StateClosing                 // CLOSE sent, waiting for CLOSED
	StateClosed                  // over; the socket is given back
)

var stateNames = [...]string{"hello", "connecting", "connected", "closing", "closed"}

// String names the state: "hello", "connecting", "connected", ...
func (s State) String() string { return stateNames[s] }

// transport is what a connection's state machine needs from the layer
// below it. Keeping it this small lets the state machine be tested
// without sockets (see conn_test.go).
type transport interface {
	// transmit sends b from the connection's socket to addr. b is not kept.
	transmit(c *Conn, to netip.AddrPort, b []byte)
	// emit reports an event to the user.
	emit(ev Event)
	// wake asks for c.tick to be called at or after t.
	wake(c *Conn, t time.Time)
	// release gives back the socket of a connection that is over.
	release(c *Conn)
	// debugf writes a line of debugging output, when debugging is on.
	debugf(format string, args ...any)
	// stateChanged tells that c went from the state from to c.state.
	stateChanged(c *Conn, from State)
}

// ConnStats are the counters of one connection.
type ConnStats struct {
	Sent     uint64        // datagrams sent, control and data
	Received uint64        // datagrams received from the peer
	Dropped  uint64        // datagrams refused: from strangers, or not valid in the state
	Queued   int           // messages waiting in the queue now
	RTT      time.Duration // round-trip time of the last PING/PONG (0 until measured)
}

// Conn is one connection: on a server, a client and its data socket; on a
// client, the connection to the server.
//
// Its methods other than Value are safe only from the goroutine that
// drives the Endpoint.
type Conn struct {
	// Value is free for the user: the Lua binding keeps the Lua object of
	// the connection here.
	Value any

	t        transport
	cfg      *Config
	isServer bool
	state    State
	token    string         // client: the token of its HELLO
	server   netip.AddrPort // client: the server's listening address
	peer     netip.AddrPort // where data goes: the client, or the server's data socket
	local    netip.AddrPort // our socket's address

	opened       time.Time // when the handshake began (server: when the HELLO came)
	offered      time.Time // server: when the data socket was offered
	lastHeard    time.Time // when the peer was last heard
	lastPing     time.Time // when we last sent PING
	pingSent     time.Time // the PING awaiting its PONG, if any
	nextRetry    time.Time // when to re-send HELLO, CONNECT or CLOSE
	retries      int       // CLOSE re-sends so far
	connectTries int       // client: CONNECTs sent to the current data socket
	stalled      bool

	queue queue
	stats ConnStats

	sock   *udpSocket // the connection's own socket
	wakeAt time.Time  // when the live timer entry is due; zero if none
}

// State returns where the connection is in its life.
func (c *Conn) State() State { return c.state }

// PeerAddr returns the address of the other side: on a server, the client;
// on a client, the server's data socket (or its listening socket before
// the server has answered).
func (c *Conn) PeerAddr() netip.AddrPort {
	if !c.isServer && !c.peer.IsValid() {
		return c.server
	}
	return c.peer
}

// LocalAddr returns the address of this connection's socket.
func (c *Conn) LocalAddr() netip.AddrPort { return c.local }

// Stalled reports whether nothing has been heard from the peer for the
// stall timeout.
func (c *Conn) Stalled() bool { return c.stalled }

// Stats returns the connection's counters.
func (c *Conn) Stats() ConnStats {
	s := c.stats
	s.Queued = c.queue.len()
	return s
}

// RTT returns the round-trip time of the last PING answered (0 until one
// is).
func (c *Conn) RTT() time.Duration { return c.stats.RTT }

// String describes the connection, e.g.
// "udpipe connection 127.0.0.1:40001->127.0.0.1:51234 (connected)".
func (c *Conn) String() string {
	return fmt.Sprintf("udpipe connection %v->%v (%v)", c.local, c.PeerAddr(), c.state)
}

func (c *Conn) setState(s State) {
	from := c.state
	c.state = s
	c.t.stateChanged(c, from)
}

// helloAgainAfter is how many CONNECTs a client sends unanswered before it
// also repeats its HELLO. Not at once: a server of the original library
// may open a new socket for every HELLO.
const helloAgainAfter = 2

// startClient begins a client's handshake: HELLO to the server.
func (c *Conn) startClient(now time.Time) {
	c.setState(StateHello)
	c.opened, c.lastHeard = now, now
	c.sendHello()
	c.nextRetry = now.Add(c.cfg.RetryInterval)
	c.t.wake(c, c.nextRetry)
}

// startServer sets up a server's data socket, offered now to a client
// whose HELLO came at helloAt (earlier if it waited in the backlog); it
// waits for CONNECT until the connect timeout, counted from the HELLO.
func (c *Conn) startServer(now, helloAt time.Time) {
	c.setState(StateConnecting)
	c.opened, c.offered, c.lastHeard = helloAt, now, now
	c.t.wake(c, helloAt.Add(c.cfg.ConnectTimeout))
}

func (c *Conn) sendHello() {
	var buf [64]byte
	c.transmit(c.server, appendHello(buf[:0], c.token))
}

func (c *Conn) transmit(to netip.AddrPort, b []byte) {
	c.stats.Sent++
	c.t.transmit(c, to, b)
}

func (c *Conn) transmitWord(w string) {
	var buf [16]byte
	c.transmit(c.peer, append(buf[:0], w...))
}

// Send sends msg to the peer, or queues it while the connection is stalled
// or still being set up. msg is copied. It fails if msg is too large or is
// a control word, if the queue is full, and once the connection is closing.
func (c *Conn) Send(msg []byte) error {
	if len(msg) > MaxDatagram {
		return ErrTooLarge
	}
	if Parse(msg).Kind != KindData {
		return ErrControlWord
	}
	switch {
	case c.state == StateConnected && !c.stalled:
		c.transmit(c.peer, msg)
		return nil
	case c.state == StateConnected || (!c.isServer && c.state <= StateConnecting):
		if c.queue.len() >= c.cfg.QueueLimit {
			return ErrQueueFull
		}
		c.queue.push(msg)
		return nil
	case c.state <= StateConnecting:
		return ErrNotOpen
	default:
		return ErrClosed
	}
}

// Ping sends a PING now, if the connection is up.
func (c *Conn) Ping() {
	if c.state == StateConnected {
		c.sendPing(c.cfg.Clock.Now())
	}
}

func (c *Conn) sendPing(now time.Time) {
	c.lastPing, c.pingSent = now, now
	c.transmitWord(wordPing)
}

// Close begins closing the connection: CLOSE is sent and re-sent until
// CLOSED comes or the retries run out (in Step); then EventClose. A
// connection that was never open ends at once, with EventClose.
func (c *Conn) Close() {
	switch c.state {
	case StateClosing, StateClosed:
		return
	case StateConnected:
		c.setState(StateClosing)
		c.retries = 0
		c.transmitWord(wordClose)
		c.nextRetry = c.cfg.Clock.Now().Add(c.cfg.RetryInterval)
		c.t.wake(c, c.nextRetry)
		c.t.debugf("%v: closing", c)
	default:
		c.finish(EventClose, nil)
	}
}

// finish ends the connection, reporting kind (when not zero) with the
// number of queued messages that were never sent.
func (c *Conn) finish(kind EventKind, data []byte) {
	if c.state == StateClosed {
		return
	}
	unsent := c.queue.len()
	c.queue.clear()
	c.setState(StateClosed)
	c.t.debugf("%v: %v (%d unsent)", c, kind, unsent)
	c.t.release(c)
	if kind != 0 {
		c.t.emit(Event{Kind: kind, Conn: c, Data: data, Addr: c.PeerAddr(), Unsent: unsent})
	}
}

// receive handles a datagram that arrived on the connection's socket.
func (c *Conn) receive(now time.Time, from netip.AddrPort, b []byte) {
	switch {
	case from == c.peer && c.peer.IsValid():
		c.fromPeer(now, b)
	case !c.isServer && from == c.server && c.state <= StateConnecting:
		c.fromServer(now, from, b)
	default:
		// A stranger, or the server's listening socket repeating itself
		// after we moved on: it may neither inject data nor close us.
		c.stats.Dropped++
		c.t.debugf("%v: dropped %d bytes from %v", c, len(b), from)
	}
}

// fromServer handles what a client hears from the listening socket S.
func (c *Conn) fromServer(now time.Time, from netip.AddrPort, b []byte) {
	d := Parse(b)
	switch d.Kind {
	case KindConnectTo:
		c.stats.Received++
		sc := d.Addr
		if sc.Addr().IsUnspecified() || sc.Addr().Is4() != c.server.Addr().Is4() {
			// The data socket has the IP of S. An unspecified address, or
			// one of the other family (our socket could not reach it),
			// means: where you reached me.
			sc = netip.AddrPortFrom(c.server.Addr(), sc.Port())
		}
		if c.state == StateConnecting {
			// S answers a HELLO we re-sent: with the same socket if our
			// CONNECT was lost, with another if the server gave ours back.
			if sc != c.peer {
				c.t.debugf("%v: offered %v instead", c, sc)
				c.peer = sc
			}
			c.transmitWord(wordConnect)
			return
		}
		c.peer = sc
		c.setState(StateConnecting)
		c.t.debugf("%v: connecting", c)
		c.t.emit(Event{Kind: EventConnecting, Conn: c, Addr: sc})
		c.transmitWord(wordConnect)
		c.connectTries = 1
		c.nextRetry = now.Add(c.cfg.RetryInterval)
		c.t.wake(c, c.nextRetry)
	case KindGoAway:
		c.stats.Received++
		c.t.emit(Event{Kind: EventMaxClients, Conn: c, Data: b, Addr: from})
		c.finish(EventDisconnect, nil)
	default:
		c.stats.Dropped++
	}
}

// fromPeer handles a datagram from the other end of the connection.
func (c *Conn) fromPeer(now time.Time, b []byte) {
	c.stats.Received++
	d := Parse(b)
	switch c.state {
	case StateConnecting:
		if c.isServer {
			if d.Kind != KindConnect {
				c.stats.Dropped++ // nothing but CONNECT opens the connection
				return
			}
			c.transmitWord(wordConnected)
			c.becomeConnected(now)
			return
		}
		// Client: CONNECTED opens the connection. So does anything else
		// from the data socket, which proves the server has accepted us
		// even if its CONNECTED was lost.
		c.becomeConnected(now)
		if d.Kind == KindConnected {
			return
		}
	case StateConnected:
		c.lastHeard = now
		if c.stalled {
			c.stalled = false
			c.t.debugf("%v: unstalled", c)
			c.t.emit(Event{Kind: EventUnstalled, Conn: c})
			c.flushQueue()
		}
	case StateClosing:
		switch d.Kind {
		case KindClosed:
			c.finish(EventClose, nil)
		case KindClose: // both sides closed at once
			c.transmitWord(wordClosed)
			c.finish(EventClose, nil)
		default:
			c.stats.Dropped++
		}
		return
	default:
		c.stats.Dropped++
		return
	}
	c.connectedDatagram(now, d, b)
}

// connectedDatagram handles a datagram on an open connection.
func (c *Conn) connectedDatagram(now time.Time, d Datagram, b []byte) {
	switch d.Kind {
	case KindPing:
		c.transmitWord(wordPong)
		c.t.emit(Event{Kind: EventPing, Conn: c})
	case KindPong:
		if !c.pingSent.IsZero() {
			c.stats.RTT = now.Sub(c.pingSent)
			c.pingSent = time.Time{}
		}
		c.t.emit(Event{Kind: EventPong, Conn: c})
	case KindConnect:
		if c.isServer { // our CONNECTED was lost
			c.transmitWord(wordConnected)
		}
	case KindConnected, KindClosed:
		// A repeat of the handshake, or an answer to a CLOSE we no
		// longer wait for: nothing to do.
	case KindClose:
		c.transmitWord(wordClosed)
		c.finish(EventClose, nil)
	default:
		c.t.emit(Event{Kind: EventNewMessage, Conn: c, Data: b})
	}
}

// becomeConnected opens the connection and sends what was queued while it
// was being set up.
func (c *Conn) becomeConnected(now time.Time) {
	c.setState(StateConnected)
	c.lastHeard, c.lastPing = now, now
	c.t.debugf("%v: connected", c)
	c.t.emit(Event{Kind: EventConnect, Conn: c, Addr: c.peer})
	c.flushQueue()
	c.t.wake(c, now.Add(c.cfg.PingInterval))
}

func (c *Conn) flushQueue() {
	for c.queue.len() > 0 {
		c.transmit(c.peer, c.queue.front())
		c.queue.pop()
	}
}

// tick runs the connection's timers; the transport calls it when a time
// asked for with wake has come.
func (c *Conn) tick(now time.Time) {
	cfg := c.cfg
	switch c.state {
	case StateHello, StateConnecting:
		deadline := c.opened.Add(cfg.ConnectTimeout)
		if !now.Before(deadline) {
			if c.isServer {
				// Half-open: the client never claimed its socket. It
				// was never reported as connected, so end it quietly.
				c.finish(0, nil)
			} else {
				c.finish(EventDisconnect, nil)
			}
			return
		}
		if !c.isServer && !now.Before(c.nextRetry) {
			if c.state == StateHello {
				c.sendHello()
			} else {
				c.transmitWord(wordConnect)
				c.connectTries++
				if c.connectTries > helloAgainAfter {
					// No answer from the data socket: a crowded server may
					// have given it back. Ask S again; it answers a repeat
					// with the same socket, or with a new one.
					c.sendHello()
				}
			}
			c.nextRetry = now.Add(cfg.RetryInterval)
		}
		if c.isServer {
			c.t.wake(c, deadline)
		} else {
			c.t.wake(c, earliest(deadline, c.nextRetry))
		}
	case StateConnected:
		silence := now.Sub(c.lastHeard)
		if silence >= cfg.DisconnectTimeout {
			c.finish(EventDisconnect, nil)
			return
		}
		if silence >= cfg.StallTimeout && !c.stalled {
			c.stalled = true
			c.t.debugf("%v: stalled", c)
			c.t.emit(Event{Kind: EventStalled, Conn: c})
		}
		if silence >= cfg.PingInterval && now.Sub(c.lastPing) >= cfg.PingInterval {
			c.sendPing(now)
		}
		next := earliest(c.lastHeard.Add(cfg.DisconnectTimeout), later(c.lastHeard, c.lastPing).Add(cfg.PingInterval))
		if !c.stalled {
			next = earliest(next, c.lastHeard.Add(cfg.StallTimeout))
		}
		c.t.wake(c, next)
	case StateClosing:
		if now.Before(c.nextRetry) {
			c.t.wake(c, c.nextRetry)
			return
		}
		if c.retries >= cfg.CloseRetries {
			c.finish(EventClose, nil)
			return
		}
		c.retries++
		c.transmitWord(wordClose)
		c.nextRetry = now.Add(cfg.RetryInterval)
		c.t.wake(c, c.nextRetry)
	}
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// queue is a FIFO of messages held while a connection cannot send.
type queue struct {
	msgs [][]byte
	head int
}

func (q *queue) len() int      { return len(q.msgs) - q.head }
func (q *queue) front() []byte { return q.msgs[q.head] }
func (q *queue) push(b []byte) { q.msgs = append(q.msgs, append([]byte(nil), b...)) }
func (q *queue) clear()        { q.msgs, q.head = nil, 0 }
func (q *queue) pop() {
	q.msgs[q.head] = nil
	q.head++
	if q.head == len(q.msgs) {
		q.msgs, q.head = q.msgs[:0], 0
	}
}

// SendString is Send for a string, without copying it first.
func (c *Conn) SendString(msg string) error {
	return c.Send(unsafe.Slice(unsafe.StringData(msg), len(msg)))
}

// Endpoint returns the endpoint the connection belongs to.
func (c *Conn) Endpoint() *Endpoint {
	e, _ := c.t.(*Endpoint)
	return e
}
