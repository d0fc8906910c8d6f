package engine

import (
	"errors"
	"testing"
	"time"
)

// FuzzConn drives the state machine of one connection (conn.go) on the
// fake transport of conn_test.go with a sequence of operations decoded
// from the fuzzer's bytes, and checks its invariants after each one.
//
// Encoding: the first byte sets the connection up (bit 0: server side;
// bits 1-2: QueueLimit-1; bit 3: the token "tok"). Each following byte is
// an operation, op = b&7, arg = b>>3:
//
//	0 receive a datagram from the peer    4 tick at the current time
//	1 receive a datagram from S           5 Send a message
//	2 receive a datagram from a stranger  6 Close
//	3 advance the clock arg*50 ms,        7 Ping
//	  ticking at every time asked for
//
// A datagram or a message is fuzzDict[arg], or, for arg past the end of
// the dictionary, raw bytes: the next byte is a length (mod 64), the bytes
// after it the payload.

var fuzzDict = [][]byte{
	[]byte(""), []byte("HELLO"), []byte("HELLO "), []byte("HELLO tok"),
	[]byte("CONNECT"), []byte("CONNECT 192.0.2.1 40001"), []byte("CONNECT 0.0.0.0 40001"),
	[]byte("CONNECT ::1 40001"), []byte("CONNECT 192.0.2.1 40002"), []byte("CONNECTED"),
	[]byte("GO AWAY!"), []byte("PING"), []byte("PONG"), []byte("CLOSE"), []byte("CLOSED"),
	[]byte("data"), []byte("hello"), []byte("\x00"),
	[]byte("CONNECT 203.0.113.9 6666"), // the stranger announced as the data socket
	make([]byte, MaxDatagram+1),        // too large to send
	[]byte("CONNECT 198.51.100.7 5555"),
	[]byte("CONNECT 192.0.2.1 0"),
}

// fuzzConnRun is the state of one run.
type fuzzConnRun struct {
	t     *testing.T
	clock *ManualClock
	cfg   Config
	tr    *fakeTransport
	c     *Conn

	accepted   int // Sends that returned nil
	dataSent   int // data datagrams transmitted
	unsent     int // Unsent of the terminal events
	connects   int
	terminals  int
	stalls     int
	unstalls   int
	closedSent int // len(tr.sent) when the connection closed; -1 while open
	events     int // events checked so far
}

// The seed corpus is in testdata/fuzz/FuzzConn: a client's handshake,
// data and close; a server's stall, full queue, recovery and disconnect;
// a client's connect timeout; GO AWAY! with messages queued; a close whose
// CLOSED never comes; raw bytes from S.
func FuzzConn(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		r := newFuzzConnRun(t, data[0])
		data = data[1:]
		for len(data) > 0 {
			b := data[0]
			data = data[1:]
			op, arg := b&7, int(b>>3)
			var payload []byte
			if op <= 2 || op == 5 {
				payload, data = fuzzPayload(arg, data)
			}
			r.do(op, arg, payload)
		}
	})
}

func fuzzPayload(arg int, data []byte) ([]byte, []byte) {
	if arg < len(fuzzDict) {
		return fuzzDict[arg], data
	}
	if len(data) == 0 {
		return nil, data
	}
	n := min(int(data[0])%64, len(data)-1)
	return data[1 : 1+n], data[1+n:]
}

func newFuzzConnRun(t *testing.T, setup byte) *fuzzConnRun {
	r := &fuzzConnRun{t: t, clock: &ManualClock{}, tr: &fakeTransport{}, closedSent: -1}
	cfg := Config{Clock: r.clock, QueueLimit: 1 + int(setup>>1&3)}
	if setup&8 != 0 {
		cfg.Token = "tok"
	}
	r.cfg = cfg.withDefaults()
	server := setup&1 != 0
	r.c = startTestConn(r.tr, &r.cfg, server)
	r.check("start", State(0), false, 0)
	return r
}

// do runs one operation and checks the invariants.
func (r *fuzzConnRun) do(op byte, arg int, payload []byte) {
	c := r.c
	before := c.state
	queued := c.queue.len()
	sentBefore := len(r.tr.sent)
	fromPeer := false
	var what string
	switch op {
	case 0, 1, 2:
		from := fakeStranger
		switch op {
		case 0:
			what = "receive from the peer"
			from = c.peer
			if !from.IsValid() {
				from = fakeServerSC
			}
			fromPeer = c.peer.IsValid()
		case 1:
			what = "receive from S"
			from = fakeServerS
			fromPeer = from == c.peer
		default:
			what = "receive from a stranger"
			fromPeer = from == c.peer // the stranger may have been announced as SC
		}
		c.receive(r.clock.Now(), from, payload)
	case 3:
		what = "advance"
		r.advance(time.Duration(arg) * 50 * time.Millisecond)
	case 4:
		what = "tick"
		r.tick()
	case 5:
		what = "Send"
		err := c.Send(payload)
		r.checkSend(err, payload, before, queued, sentBefore)
	case 6:
		what = "Close"
		c.Close()
	case 7:
		what = "Ping"
		c.Ping()
	}
	r.check(what, before, fromPeer, sentBefore)
}

// advance moves the clock on by d, ticking at every time the connection
// asked for on the way, in order.
func (r *fuzzConnRun) advance(d time.Duration) {
	target := r.clock.Now().Add(d)
	for ticks := 0; ; ticks++ {
		if ticks > 10000 {
			r.t.Fatalf("more than 10000 timer ticks within %v", d)
		}
		i := -1
		for j, w := range r.tr.wakes {
			if !w.After(target) && (i < 0 || w.Before(r.tr.wakes[i])) {
				i = j
			}
		}
		if i < 0 {
			break
		}
		w := r.tr.wakes[i]
		r.tr.wakes = append(r.tr.wakes[:i], r.tr.wakes[i+1:]...)
		if now := r.clock.Now(); w.After(now) {
			r.clock.Advance(w.Sub(now))
		}
		r.tick()
	}
	if now := r.clock.Now(); target.After(now) {
		r.clock.Advance(target.Sub(now))
	}
}

// tick ticks the connection now; what it asks to be woken for must be
// later than now, or the endpoint's timer loop would spin.
func (r *fuzzConnRun) tick() {
	now := r.clock.Now()
	n := len(r.tr.wakes)
	r.c.tick(now)
	for _, w := range r.tr.wakes[n:] {
		if !w.After(now) {
			r.t.Fatalf("tick at %v asked to be woken at %v, not later (state %v)", now, w, r.c.state)
		}
	}
}

func (r *fuzzConnRun) checkSend(err error, msg []byte, before State, queued, sentBefore int) {
	c := r.c
	switch {
	case len(msg) > MaxDatagram:
		if !errors.Is(err, ErrTooLarge) {
			r.t.Fatalf("Send of %d bytes: %v, want ErrTooLarge", len(msg), err)
		}
	case Parse(msg).Kind != KindData:
		if !errors.Is(err, ErrControlWord) {
			r.t.Fatalf("Send(%q): %v, want ErrControlWord", msg, err)
		}
	case before >= StateClosing:
		if !errors.Is(err, ErrClosed) {
			r.t.Fatalf("Send in state %v: %v, want ErrClosed", before, err)
		}
	case errors.Is(err, ErrQueueFull):
		if queued != r.cfg.QueueLimit {
			r.t.Fatalf("ErrQueueFull with %d queued, limit %d", queued, r.cfg.QueueLimit)
		}
	case err == nil:
		r.accepted++
		sent := r.tr.sent[sentBefore:]
		switch {
		case len(sent) == 1 && sent[0].data == string(msg) && sent[0].to == c.peer:
			if before != StateConnected || c.stalled {
				r.t.Fatalf("Send transmitted in state %v (stalled %v)", before, c.stalled)
			}
		case len(sent) == 0 && c.queue.len() == queued+1:
		default:
			r.t.Fatalf("Send(%q) returned nil, but sent %v and queued %d (had %d)", msg, sent, c.queue.len(), queued)
		}
	case errors.Is(err, ErrNotOpen):
		if !c.isServer || before > StateConnecting {
			r.t.Fatalf("ErrNotOpen on a %v connection (server %v)", before, c.isServer)
		}
	default:
		r.t.Fatalf("Send in state %v: unexpected %v", before, err)
	}
	if err != nil && len(r.tr.sent) != sentBefore {
		r.t.Fatalf("Send failed (%v) but transmitted %v", err, r.tr.sent[sentBefore:])
	}
}

// check verifies the invariants after an operation.
func (r *fuzzConnRun) check(what string, before State, fromPeer bool, sentBefore int) {
	t, c := r.t, r.c
	if c.state < before {
		t.Fatalf("%s: state went back from %v to %v", what, before, c.state)
	}
	if r.closedSent >= 0 && len(r.tr.sent) != r.closedSent {
		t.Fatalf("%s: transmitted %v after the connection closed", what, r.tr.sent[r.closedSent:])
	}
	wasClosed := r.closedSent >= 0
	if c.state == StateClosed && !wasClosed {
		r.closedSent = len(r.tr.sent)
	}
	if want := 0; c.state == StateClosed {
		want = 1
		if r.tr.released != want {
			t.Fatalf("%s: closed, released %d times", what, r.tr.released)
		}
	} else if r.tr.released != want {
		t.Fatalf("%s: %v, but released %d times", what, c.state, r.tr.released)
	}
	if n := c.queue.len(); n > r.cfg.QueueLimit {
		t.Fatalf("%s: %d queued, limit %d", what, n, r.cfg.QueueLimit)
	}
	if c.state == StateClosed && c.queue.len() != 0 {
		t.Fatalf("%s: closed with %d still queued", what, c.queue.len())
	}
	if c.stats.Sent != uint64(len(r.tr.sent)) {
		t.Fatalf("%s: Stats.Sent %d, transmitted %d", what, c.stats.Sent, len(r.tr.sent))
	}
	for _, ev := range r.tr.events[r.events:] {
		if ev.Conn != c && ev.Conn != nil {
			t.Fatalf("%s: event %v for another connection", what, ev.Kind)
		}
		if wasClosed || r.terminals > 0 {
			t.Fatalf("%s: event %v after the connection ended", what, ev.Kind)
		}
		switch ev.Kind {
		case EventConnect:
			r.connects++
			if r.connects > 1 {
				t.Fatalf("%s: a second EventConnect", what)
			}
		case EventDisconnect, EventClose:
			r.terminals++
			r.unsent += ev.Unsent
			if c.state != StateClosed {
				t.Fatalf("%s: %v while %v", what, ev.Kind, c.state)
			}
		case EventNewMessage:
			if !fromPeer {
				t.Fatalf("%s: EventNewMessage %q not from the peer", what, ev.Data)
			}
			if r.connects == 0 {
				t.Fatalf("%s: EventNewMessage %q before EventConnect", what, ev.Data)
			}
		case EventStalled:
			r.stalls++
		case EventUnstalled:
			r.unstalls++
		}
		if r.stalls-r.unstalls != 0 && r.stalls-r.unstalls != 1 {
			t.Fatalf("%s: %d EventStalled, %d EventUnstalled", what, r.stalls, r.unstalls)
		}
	}
	r.events = len(r.tr.events)
	if r.terminals > 1 {
		t.Fatalf("%s: %d terminal events", what, r.terminals)
	}
	if c.state == StateConnected && c.stalled != (r.stalls > r.unstalls) {
		t.Fatalf("%s: Stalled() %v after %d EventStalled and %d EventUnstalled", what, c.stalled, r.stalls, r.unstalls)
	}
	// Where the connection sends: to S (a client's HELLO) or to its peer.
	for _, s := range r.tr.sent[sentBefore:] {
		if s.to != c.peer && !(!c.isServer && s.to == c.server) {
			t.Fatalf("%s: sent %q to %v, neither the peer %v nor the server", what, s.data, s.to, c.peer)
		}
	}
	// Nothing is dropped silently: every message Send took was sent, is
	// queued, or was reported unsent.
	for _, s := range r.tr.sent[sentBefore:] {
		if Parse([]byte(s.data)).Kind == KindData {
			r.dataSent++
		}
	}
	if r.accepted != r.dataSent+c.queue.len()+r.unsent {
		t.Fatalf("%s: %d messages accepted, %d sent, %d queued, %d reported unsent", what, r.accepted, r.dataSent, c.queue.len(), r.unsent)
	}
}
