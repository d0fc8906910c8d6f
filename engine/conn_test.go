package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// The state machine of one connection, alone: a fake transport records
// what it transmits, emits, asks to be woken for and releases, and a
// ManualClock runs the timers.

var (
	fakeServerS  = netip.MustParseAddrPort("192.0.2.1:4000")  // the server's listening socket S
	fakeServerSC = netip.MustParseAddrPort("192.0.2.1:40001") // the data socket SC
	fakeClient   = netip.MustParseAddrPort("198.51.100.7:5555")
	fakeStranger = netip.MustParseAddrPort("203.0.113.9:6666")
)

type sentDatagram struct {
	to   netip.AddrPort
	data string
	at   time.Time
}

// fakeTransport implements transport and records everything. It calls
// tick at every time asked for with wake (a timer heap that forgets
// nothing), which the contract of wake allows.
type fakeTransport struct {
	sent     []sentDatagram
	events   []Event  // Data copied
	log      []string // "send PING", "event Stalled", in order
	wakes    []time.Time
	released int
	debug    []string
}

func (f *fakeTransport) transmit(c *Conn, to netip.AddrPort, b []byte) {
	f.sent = append(f.sent, sentDatagram{to: to, data: string(b), at: c.cfg.Clock.Now()})
	f.log = append(f.log, "send "+string(b))
}

func (f *fakeTransport) emit(ev Event) {
	ev.Data = append([]byte(nil), ev.Data...)
	f.events = append(f.events, ev)
	f.log = append(f.log, "event "+ev.Kind.String())
}

func (f *fakeTransport) wake(c *Conn, t time.Time) { f.wakes = append(f.wakes, t) }

func (f *fakeTransport) release(c *Conn) {
	f.released++
	f.log = append(f.log, "release")
}

func (f *fakeTransport) debugf(format string, args ...any) {
	f.debug = append(f.debug, fmt.Sprintf(format, args...))
}

// harness is one connection on a fake transport.
type harness struct {
	t     *testing.T
	clock *ManualClock
	cfg   Config
	tr    *fakeTransport
	c     *Conn
	seen  int // sent datagrams already looked at by newSent
	seenE int // events already looked at by newEvents
}

func newHarness(t *testing.T, cfg Config, server bool) *harness {
	t.Helper()
	h := &harness{t: t, clock: &ManualClock{}, tr: &fakeTransport{}}
	cfg.Clock = h.clock
	h.cfg = cfg.withDefaults()
	h.c = startTestConn(h.tr, &h.cfg, server)
	return h
}

// startTestConn makes a connection on tr, as a server's (to fakeClient,
// on fakeServerSC) or a client's (from fakeClient to fakeServerS), and
// starts its handshake at cfg.Clock's time.
func startTestConn(tr transport, cfg *Config, server bool) *Conn {
	c := &Conn{t: tr, cfg: cfg, isServer: server}
	if server {
		c.peer = fakeClient
		c.local = fakeServerSC
		c.startServer(cfg.Clock.Now(), cfg.Clock.Now())
	} else {
		c.local = fakeClient
		c.server = fakeServerS
		c.token = cfg.Token
		c.startClient(cfg.Clock.Now())
	}
	return c
}

func (h *harness) now() time.Time { return h.clock.Now() }

// advance moves the clock forward by d, ticking the connection at every
// time it asked to be woken for on the way, in order.
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	target := h.now().Add(d)
	for {
		i := -1
		for j, w := range h.tr.wakes {
			if !w.After(target) && (i < 0 || w.Before(h.tr.wakes[i])) {
				i = j
			}
		}
		if i < 0 {
			break
		}
		w := h.tr.wakes[i]
		h.tr.wakes = slices.Delete(h.tr.wakes, i, i+1)
		if w.After(h.now()) {
			h.clock.Advance(w.Sub(h.now()))
		}
		h.c.tick(h.now())
	}
	if target.After(h.now()) {
		h.clock.Advance(target.Sub(h.now()))
	}
}

// recv hands the connection a datagram from from.
func (h *harness) recv(from netip.AddrPort, s string) {
	h.c.receive(h.now(), from, []byte(s))
}

// newSent returns the datagrams transmitted since the last call.
func (h *harness) newSent() []sentDatagram {
	s := h.tr.sent[h.seen:]
	h.seen = len(h.tr.sent)
	return s
}

// newEvents returns the kinds of the events emitted since the last call.
func (h *harness) newEvents() []EventKind {
	var ks []EventKind
	for _, ev := range h.tr.events[h.seenE:] {
		ks = append(ks, ev.Kind)
	}
	h.seenE = len(h.tr.events)
	return ks
}

func (h *harness) lastEvent() Event {
	h.t.Helper()
	if len(h.tr.events) == 0 {
		h.t.Fatal("no event")
	}
	return h.tr.events[len(h.tr.events)-1]
}

// expectSent checks that exactly these datagrams went to to since the
// last look.
func (h *harness) expectSent(to netip.AddrPort, want ...string) {
	h.t.Helper()
	got := h.newSent()
	var data []string
	for _, s := range got {
		if s.to != to {
			h.t.Errorf("%q sent to %v, want %v", s.data, s.to, to)
		}
		data = append(data, s.data)
	}
	if !slices.Equal(data, want) {
		h.t.Fatalf("sent %q, want %q", data, want)
	}
}

func (h *harness) expectEvents(want ...EventKind) {
	h.t.Helper()
	if got := h.newEvents(); !slices.Equal(got, want) {
		h.t.Fatalf("events %v, want %v", got, want)
	}
}

// connectClient takes a new client harness through the handshake.
func connectClient(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := newHarness(t, cfg, false)
	h.recv(fakeServerS, "CONNECT 192.0.2.1 40001")
	h.recv(fakeServerSC, "CONNECTED")
	if h.c.State() != StateConnected {
		t.Fatalf("state %v after the handshake", h.c.State())
	}
	h.newSent()
	h.newEvents()
	return h
}

// connectServer takes a new server harness through CONNECT.
func connectServer(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := newHarness(t, cfg, true)
	h.recv(fakeClient, "CONNECT")
	if h.c.State() != StateConnected {
		t.Fatalf("state %v after CONNECT", h.c.State())
	}
	h.newSent()
	h.newEvents()
	return h
}

func TestConnClientHandshake(t *testing.T) {
	h := newHarness(t, Config{Token: "tok", RetryInterval: 100 * time.Millisecond}, false)
	if h.c.State() != StateHello {
		t.Fatalf("state %v, want hello", h.c.State())
	}
	if h.c.PeerAddr() != fakeServerS {
		t.Errorf("PeerAddr before the answer = %v, want the server %v", h.c.PeerAddr(), fakeServerS)
	}
	h.expectSent(fakeServerS, "HELLO tok")
	h.expectEvents()

	// HELLO is re-sent every retry interval, not before.
	h.advance(99 * time.Millisecond)
	h.expectSent(fakeServerS)
	h.advance(time.Millisecond)
	h.expectSent(fakeServerS, "HELLO tok")
	h.advance(100 * time.Millisecond)
	h.expectSent(fakeServerS, "HELLO tok")

	// The answer: onConnecting, then CONNECT to the data socket.
	h.recv(fakeServerS, "CONNECT 192.0.2.1 40001")
	h.expectEvents(EventConnecting)
	if ev := h.lastEvent(); ev.Addr != fakeServerSC || ev.Conn != h.c {
		t.Errorf("EventConnecting Addr %v Conn %p, want %v %p", ev.Addr, ev.Conn, fakeServerSC, h.c)
	}
	h.expectSent(fakeServerSC, "CONNECT")
	if h.c.State() != StateConnecting || h.c.PeerAddr() != fakeServerSC {
		t.Fatalf("state %v peer %v, want connecting to %v", h.c.State(), h.c.PeerAddr(), fakeServerSC)
	}

	// CONNECT is re-sent every retry interval, HELLO no more.
	h.advance(99 * time.Millisecond)
	h.expectSent(fakeServerSC)
	h.advance(time.Millisecond)
	h.expectSent(fakeServerSC, "CONNECT")

	// S repeats itself (our CONNECT or its answer lost): CONNECT again,
	// no second onConnecting.
	h.recv(fakeServerS, "CONNECT 192.0.2.1 40001")
	h.expectSent(fakeServerSC, "CONNECT")
	h.expectEvents()

	h.recv(fakeServerSC, "CONNECTED")
	h.expectEvents(EventConnect)
	if ev := h.lastEvent(); ev.Addr != fakeServerSC || ev.Conn != h.c {
		t.Errorf("EventConnect Addr %v, want %v", ev.Addr, fakeServerSC)
	}
	if h.c.State() != StateConnected {
		t.Fatalf("state %v, want connected", h.c.State())
	}
	h.advance(500 * time.Millisecond) // less than the ping interval
	h.expectSent(fakeServerSC)

	// A late CONNECT <ip> <port> from S, and a repeated CONNECTED, change
	// nothing.
	h.recv(fakeServerS, "CONNECT 192.0.2.1 40001")
	h.recv(fakeServerSC, "CONNECTED")
	h.expectSent(fakeServerSC)
	h.expectEvents()
	if h.c.State() != StateConnected {
		t.Fatalf("state %v, want connected", h.c.State())
	}
	st := h.c.Stats()
	if st.Sent != 6 { // 3 HELLO, 3 CONNECT
		t.Errorf("Stats().Sent = %d, want 6", st.Sent)
	}
	if h.tr.released != 0 {
		t.Errorf("released %d times while open", h.tr.released)
	}
	if !strings.Contains(h.c.String(), "connected") {
		t.Errorf("String() = %q does not give the state", h.c.String())
	}
}

func TestConnClientEmptyToken(t *testing.T) {
	h := newHarness(t, Config{}, false)
	got := h.newSent()
	if len(got) != 1 || (got[0].data != "HELLO" && got[0].data != "HELLO ") {
		t.Fatalf("sent %v, want one HELLO with the empty token", got)
	}
}

func TestConnClientUnspecifiedAnnounce(t *testing.T) {
	for _, tc := range []struct {
		server, announce string
		want             netip.AddrPort
	}{
		{"192.0.2.1:4000", "CONNECT 0.0.0.0 40001", netip.MustParseAddrPort("192.0.2.1:40001")},
		{"192.0.2.1:4000", "CONNECT 192.0.2.99 40001", netip.MustParseAddrPort("192.0.2.99:40001")},
		{"[2001:db8::1]:4000", "CONNECT :: 40002", netip.MustParseAddrPort("[2001:db8::1]:40002")},
		{"[2001:db8::1]:4000", "CONNECT 2001:db8::2 40002", netip.MustParseAddrPort("[2001:db8::2]:40002")},
	} {
		t.Run(tc.announce, func(t *testing.T) {
			h := &harness{t: t, clock: &ManualClock{}, tr: &fakeTransport{}}
			h.cfg = Config{Clock: h.clock}.withDefaults()
			server := netip.MustParseAddrPort(tc.server)
			h.c = &Conn{t: h.tr, cfg: &h.cfg, server: server, local: fakeClient}
			h.c.startClient(h.now())
			h.newSent() // the HELLO
			h.recv(server, tc.announce)
			h.expectSent(tc.want, "CONNECT")
			if ev := h.lastEvent(); ev.Kind != EventConnecting || ev.Addr != tc.want {
				t.Fatalf("event %v %v, want Connecting %v", ev.Kind, ev.Addr, tc.want)
			}
			if h.c.PeerAddr() != tc.want {
				t.Fatalf("PeerAddr %v, want %v", h.c.PeerAddr(), tc.want)
			}
			h.recv(tc.want, "CONNECTED")
			h.expectEvents(EventConnecting, EventConnect)
		})
	}
}

func TestConnClientConnectTimeout(t *testing.T) {
	t.Run("no answer to HELLO", func(t *testing.T) {
		h := newHarness(t, Config{RetryInterval: 500 * time.Millisecond, ConnectTimeout: 2 * time.Second}, false)
		if err := h.c.Send([]byte("never sent")); err != nil {
			t.Fatal(err)
		}
		h.advance(2*time.Second - time.Nanosecond)
		if n := len(h.newSent()); n != 4 { // at 0, 0.5, 1, 1.5 s
			t.Errorf("%d HELLOs before the timeout, want 4", n)
		}
		h.expectEvents()
		h.advance(time.Nanosecond)
		h.expectEvents(EventDisconnect)
		if ev := h.lastEvent(); ev.Unsent != 1 || ev.Conn != h.c || ev.Addr != fakeServerS {
			t.Errorf("EventDisconnect Unsent %d Addr %v, want 1 %v", ev.Unsent, ev.Addr, fakeServerS)
		}
		if h.c.State() != StateClosed || h.tr.released != 1 {
			t.Fatalf("state %v released %d, want closed and released once", h.c.State(), h.tr.released)
		}
		h.advance(10 * time.Second)
		h.expectSent(fakeServerS)
		h.expectEvents()
	})
	t.Run("no answer to CONNECT", func(t *testing.T) {
		h := newHarness(t, Config{RetryInterval: 500 * time.Millisecond, ConnectTimeout: 2 * time.Second}, false)
		h.advance(time.Second)
		h.recv(fakeServerS, "CONNECT 192.0.2.1 40001")
		h.newSent()
		// The timeout runs from the start of the attempt.
		h.advance(time.Second - time.Nanosecond)
		h.expectEvents(EventConnecting)
		h.advance(time.Nanosecond)
		h.expectEvents(EventDisconnect)
		if h.c.State() != StateClosed || h.tr.released != 1 {
			t.Fatalf("state %v released %d", h.c.State(), h.tr.released)
		}
		// Too late now.
		h.recv(fakeServerSC, "CONNECTED")
		h.expectEvents()
		if h.c.State() != StateClosed {
			t.Fatalf("state %v after a late CONNECTED", h.c.State())
		}
	})
}

func TestConnClientGoAway(t *testing.T) {
	h := newHarness(t, Config{}, false)
	h.newSent()
	// GO AWAY! from anyone but S is ignored.
	h.recv(fakeStranger, "GO AWAY!")
	h.expectEvents()
	if h.c.State() != StateHello || h.c.Stats().Dropped != 1 {
		t.Fatalf("state %v dropped %d after a stranger's GO AWAY!", h.c.State(), h.c.Stats().Dropped)
	}
	h.recv(fakeServerS, "GO AWAY!")
	h.expectEvents(EventMaxClients, EventDisconnect)
	ev := h.tr.events[0]
	if string(ev.Data) != "GO AWAY!" || ev.Addr != fakeServerS || ev.Conn != h.c {
		t.Errorf("EventMaxClients Data %q Addr %v, want GO AWAY! from %v", ev.Data, ev.Addr, fakeServerS)
	}
	if h.c.State() != StateClosed || h.tr.released != 1 {
		t.Fatalf("state %v released %d", h.c.State(), h.tr.released)
	}
	h.advance(10 * time.Second)
	h.expectSent(fakeServerS)
	h.expectEvents()
}

func TestConnClientBecomesConnectedOnData(t *testing.T) {
	// CONNECTED was lost, but the data socket talks: that proves it.
	h := newHarness(t, Config{}, false)
	h.recv(fakeServerS, "CONNECT 192.0.2.1 40001")
	h.newEvents()
	h.recv(fakeServerSC, "first message")
	h.expectEvents(EventConnect, EventNewMessage)
	if got := string(h.lastEvent().Data); got != "first message" {
		t.Errorf("message %q", got)
	}
}

func TestConnClientSendBeforeConnect(t *testing.T) {
	h := newHarness(t, Config{}, false)
	h.newSent()
	msg := []byte("a")
	for _, m := range []string{"a", "b", "c"} {
		copy(msg, m)
		if err := h.c.Send(msg); err != nil {
			t.Fatalf("Send(%q) before connect: %v", m, err)
		}
	}
	msg[0] = 'z' // Send copies
	h.expectSent(fakeServerS)
	if q := h.c.Stats().Queued; q != 3 {
		t.Fatalf("Queued = %d, want 3", q)
	}
	h.recv(fakeServerS, "CONNECT 192.0.2.1 40001")
	h.expectSent(fakeServerSC, "CONNECT")
	if err := h.c.Send([]byte("d")); err != nil {
		t.Fatal(err)
	}
	h.recv(fakeServerSC, "CONNECTED")
	h.expectSent(fakeServerSC, "a", "b", "c", "d")
	if q := h.c.Stats().Queued; q != 0 {
		t.Fatalf("Queued = %d after connect, want 0", q)
	}
	if err := h.c.Send([]byte("e")); err != nil {
		t.Fatal(err)
	}
	h.expectSent(fakeServerSC, "e")
}

func TestConnClientCloseBeforeConnect(t *testing.T) {
	h := newHarness(t, Config{}, false)
	h.newSent()
	h.c.Close()
	h.expectEvents(EventClose)
	if h.c.State() != StateClosed || h.tr.released != 1 {
		t.Fatalf("state %v released %d", h.c.State(), h.tr.released)
	}
	h.advance(time.Minute)
	h.expectSent(fakeServerS)
	if err := h.c.Send([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after close: %v, want ErrClosed", err)
	}
}

func TestConnServerHalfOpen(t *testing.T) {
	h := newHarness(t, Config{}, true)
	if h.c.State() != StateConnecting {
		t.Fatalf("state %v, want connecting (half-open)", h.c.State())
	}
	h.expectSent(fakeClient) // the server's data socket says nothing first
	// Nothing but CONNECT opens it.
	for _, s := range []string{"data", "PING", "CONNECTED", "HELLO", "CLOSE"} {
		h.recv(fakeClient, s)
	}
	h.expectSent(fakeClient)
	h.expectEvents()
	if h.c.State() != StateConnecting {
		t.Fatalf("state %v after non-CONNECT datagrams", h.c.State())
	}
	if d := h.c.Stats().Dropped; d != 5 {
		t.Errorf("Dropped = %d, want 5", d)
	}
	if err := h.c.Send([]byte("x")); !errors.Is(err, ErrNotOpen) {
		t.Errorf("Send on a half-open connection: %v, want ErrNotOpen", err)
	}
	// Nor does a CONNECT from someone else.
	h.recv(fakeStranger, "CONNECT")
	h.expectSent(fakeClient)
	if h.c.State() != StateConnecting {
		t.Fatalf("a stranger's CONNECT opened the connection")
	}

	h.recv(fakeClient, "CONNECT")
	h.expectSent(fakeClient, "CONNECTED")
	h.expectEvents(EventConnect)
	if ev := h.lastEvent(); ev.Addr != fakeClient || ev.Conn != h.c {
		t.Errorf("EventConnect Addr %v, want %v", ev.Addr, fakeClient)
	}
	// A repeated CONNECT (our CONNECTED was lost) gets CONNECTED again.
	h.recv(fakeClient, "CONNECT")
	h.expectSent(fakeClient, "CONNECTED")
	h.expectEvents()
	h.recv(fakeClient, "CONNECT")
	h.expectSent(fakeClient, "CONNECTED")
	h.expectEvents()
	if h.c.State() != StateConnected {
		t.Fatalf("state %v", h.c.State())
	}
	// Now data flows.
	h.recv(fakeClient, "data")
	h.expectEvents(EventNewMessage)
}

func TestConnServerHalfOpenExpires(t *testing.T) {
	h := newHarness(t, Config{ConnectTimeout: time.Second}, true)
	h.advance(time.Second - time.Nanosecond)
	if h.c.State() != StateConnecting || h.tr.released != 0 {
		t.Fatalf("state %v released %d before the connect timeout", h.c.State(), h.tr.released)
	}
	h.advance(time.Nanosecond)
	if h.c.State() != StateClosed || h.tr.released != 1 {
		t.Fatalf("state %v released %d after the connect timeout", h.c.State(), h.tr.released)
	}
	h.expectEvents() // never reported as open: no event
	h.expectSent(fakeClient)
	h.recv(fakeClient, "CONNECT")
	h.expectSent(fakeClient)
	h.expectEvents()
}

func TestConnPingAfterSilence(t *testing.T) {
	for _, server := range []bool{false, true} {
		t.Run(fmt.Sprint("server=", server), func(t *testing.T) {
			cfg := Config{PingInterval: time.Second}
			var h *harness
			var peer netip.AddrPort
			if server {
				h, peer = connectServer(t, cfg), fakeClient
			} else {
				h, peer = connectClient(t, cfg), fakeServerSC
			}
			h.advance(time.Second - time.Nanosecond)
			h.expectSent(peer)
			h.advance(time.Nanosecond)
			h.expectSent(peer, "PING")
			h.advance(250 * time.Millisecond)
			h.recv(peer, "PONG")
			h.expectEvents(EventPong)
			if rtt := h.c.RTT(); rtt != 250*time.Millisecond {
				t.Errorf("RTT = %v, want 250ms", rtt)
			}
			if rtt := h.c.Stats().RTT; rtt != 250*time.Millisecond {
				t.Errorf("Stats().RTT = %v, want 250ms", rtt)
			}
			// Next PING a ping interval after the PONG was heard.
			h.advance(time.Second - time.Nanosecond)
			h.expectSent(peer)
			h.advance(time.Nanosecond)
			h.expectSent(peer, "PING")
			// No answer: the next PING a ping interval later.
			h.advance(time.Second)
			h.expectSent(peer, "PING")
			h.advance(40 * time.Millisecond)
			h.recv(peer, "PONG")
			if rtt := h.c.RTT(); rtt != 40*time.Millisecond {
				t.Errorf("RTT = %v, want 40ms", rtt)
			}
			// A PONG with no PING outstanding leaves the RTT alone.
			h.recv(peer, "PONG")
			if rtt := h.c.RTT(); rtt != 40*time.Millisecond {
				t.Errorf("RTT = %v after an unasked PONG, want 40ms", rtt)
			}
		})
	}
}

func TestConnNoPingWhilePeerTalks(t *testing.T) {
	h := connectServer(t, Config{PingInterval: time.Second})
	for i := 0; i < 20; i++ {
		h.advance(500 * time.Millisecond)
		h.recv(fakeClient, "tick")
	}
	h.expectSent(fakeClient) // 10 s with the peer talking: no PING
	if h.c.Stalled() || h.c.State() != StateConnected {
		t.Fatalf("stalled %v state %v although the peer talks", h.c.Stalled(), h.c.State())
	}
}

func TestConnAnswersPing(t *testing.T) {
	h := connectClient(t, Config{})
	h.recv(fakeServerSC, "PING")
	h.expectSent(fakeServerSC, "PONG")
	h.expectEvents(EventPing)
	if ev := h.lastEvent(); ev.Conn != h.c {
		t.Errorf("EventPing Conn %p, want %p", ev.Conn, h.c)
	}
	// Ping sends one now.
	h.c.Ping()
	h.expectSent(fakeServerSC, "PING")
}

func TestConnStallQueueUnstall(t *testing.T) {
	cfg := Config{PingInterval: time.Second, StallTimeout: 3 * time.Second, DisconnectTimeout: 10 * time.Second}
	h := connectServer(t, cfg)
	h.advance(3*time.Second - time.Nanosecond)
	h.expectEvents()
	if h.c.Stalled() {
		t.Fatal("stalled before the stall timeout")
	}
	h.advance(time.Nanosecond)
	h.expectEvents(EventStalled)
	if !h.c.Stalled() {
		t.Fatal("Stalled() false after EventStalled")
	}
	// Stalled once; pings go on meanwhile.
	h.advance(5 * time.Second) // 8 s of silence
	h.expectEvents()
	pings := 0
	for _, s := range h.newSent() {
		if s.data != "PING" {
			t.Errorf("sent %q while stalled", s.data)
		}
		pings++
	}
	if pings != 8 { // at 1, 2, ..., 8 s
		t.Errorf("%d PINGs in 8 s of silence, want 8", pings)
	}

	// Send queues while stalled, in order.
	for _, m := range []string{"q1", "q2", "q3"} {
		if err := h.c.Send([]byte(m)); err != nil {
			t.Fatalf("Send(%q) while stalled: %v", m, err)
		}
	}
	h.expectSent(fakeClient)
	if q := h.c.Stats().Queued; q != 3 {
		t.Fatalf("Queued = %d, want 3", q)
	}

	// A stranger is no sign of life.
	h.recv(fakeStranger, "PONG")
	h.expectEvents()
	h.expectSent(fakeClient)

	// The first datagram heard: onUnstalled, then the queue in order, then
	// the datagram's own business, then what is sent later.
	h.tr.log = nil
	h.recv(fakeClient, "PING")
	if err := h.c.Send([]byte("later")); err != nil {
		t.Fatal(err)
	}
	want := []string{"event Unstalled", "send q1", "send q2", "send q3", "send PONG", "event Ping", "send later"}
	if !slices.Equal(h.tr.log, want) {
		t.Fatalf("after the stall: %q, want %q", h.tr.log, want)
	}
	if h.c.Stalled() || h.c.Stats().Queued != 0 {
		t.Fatalf("stalled %v queued %d after unstall", h.c.Stalled(), h.c.Stats().Queued)
	}
	// The stall timer is armed again.
	h.newSent()
	h.newEvents()
	h.advance(3 * time.Second)
	h.expectEvents(EventStalled)
}

func TestConnQueueLimit(t *testing.T) {
	h := connectClient(t, Config{QueueLimit: 3})
	h.advance(h.cfg.StallTimeout)
	if !h.c.Stalled() {
		t.Fatal("not stalled")
	}
	for i := 0; i < 3; i++ {
		if err := h.c.Send([]byte{byte('a' + i)}); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	if err := h.c.Send([]byte("d")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Send beyond QueueLimit: %v, want ErrQueueFull", err)
	}
	if q := h.c.Stats().Queued; q != 3 {
		t.Fatalf("Queued = %d, want 3", q)
	}
	h.newSent()
	h.recv(fakeServerSC, "x")
	h.expectSent(fakeServerSC, "a", "b", "c")
}

func TestConnDisconnectTimeout(t *testing.T) {
	cfg := Config{PingInterval: time.Second, StallTimeout: 3 * time.Second, DisconnectTimeout: 10 * time.Second}
	h := connectClient(t, cfg)
	h.advance(5 * time.Second)
	h.expectEvents(EventStalled)
	for _, m := range []string{"a", "b"} {
		if err := h.c.Send([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	h.advance(5*time.Second - time.Nanosecond)
	h.expectEvents()
	if h.c.State() != StateConnected {
		t.Fatalf("state %v before the disconnect timeout", h.c.State())
	}
	h.advance(time.Nanosecond)
	h.expectEvents(EventDisconnect)
	ev := h.lastEvent()
	if ev.Unsent != 2 || ev.Conn != h.c {
		t.Errorf("EventDisconnect Unsent = %d, want 2", ev.Unsent)
	}
	if h.c.State() != StateClosed || h.tr.released != 1 {
		t.Fatalf("state %v released %d", h.c.State(), h.tr.released)
	}
	if err := h.c.Send([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after disconnect: %v, want ErrClosed", err)
	}
	h.newSent()
	h.advance(time.Minute)
	h.expectSent(fakeServerSC)
	h.recv(fakeServerSC, "PONG")
	h.expectEvents()
}

func TestConnCloseRetries(t *testing.T) {
	for _, retries := range []int{3, 1} {
		t.Run(fmt.Sprint("retries=", retries), func(t *testing.T) {
			h := connectServer(t, Config{RetryInterval: 100 * time.Millisecond, CloseRetries: retries})
			h.c.Close()
			h.expectSent(fakeClient, "CLOSE")
			if h.c.State() != StateClosing {
				t.Fatalf("state %v, want closing", h.c.State())
			}
			if err := h.c.Send([]byte("x")); !errors.Is(err, ErrClosed) {
				t.Errorf("Send while closing: %v, want ErrClosed", err)
			}
			h.c.Close() // again: nothing more
			h.expectSent(fakeClient)
			for i := 0; i < retries; i++ {
				h.advance(100*time.Millisecond - time.Nanosecond)
				h.expectSent(fakeClient)
				h.advance(time.Nanosecond)
				h.expectSent(fakeClient, "CLOSE")
				h.expectEvents()
			}
			h.advance(100*time.Millisecond - time.Nanosecond)
			h.expectEvents()
			h.advance(time.Nanosecond)
			h.expectSent(fakeClient)
			h.expectEvents(EventClose)
			if h.c.State() != StateClosed || h.tr.released != 1 {
				t.Fatalf("state %v released %d", h.c.State(), h.tr.released)
			}
			h.advance(time.Second)
			h.expectSent(fakeClient)
			h.expectEvents()
		})
	}
}

func TestConnCloseAnswered(t *testing.T) {
	h := connectClient(t, Config{RetryInterval: 100 * time.Millisecond})
	h.c.Close()
	h.expectSent(fakeServerSC, "CLOSE")
	h.advance(50 * time.Millisecond)
	// Data from the peer while closing is not delivered, nor does a
	// stranger's CLOSED end it.
	h.recv(fakeServerSC, "late data")
	h.recv(fakeStranger, "CLOSED")
	h.expectEvents()
	if h.c.State() != StateClosing {
		t.Fatalf("state %v", h.c.State())
	}
	h.recv(fakeServerSC, "CLOSED")
	h.expectEvents(EventClose)
	if h.c.State() != StateClosed || h.tr.released != 1 {
		t.Fatalf("state %v released %d", h.c.State(), h.tr.released)
	}
	h.advance(time.Second)
	h.expectSent(fakeServerSC)
	h.expectEvents()
}

func TestConnCloseCrossing(t *testing.T) {
	// Both sides close at once: each answers the other's CLOSE.
	h := connectClient(t, Config{})
	h.c.Close()
	h.expectSent(fakeServerSC, "CLOSE")
	h.recv(fakeServerSC, "CLOSE")
	h.expectSent(fakeServerSC, "CLOSED")
	h.expectEvents(EventClose)
}

func TestConnPeerClose(t *testing.T) {
	for _, server := range []bool{false, true} {
		t.Run(fmt.Sprint("server=", server), func(t *testing.T) {
			var h *harness
			var peer netip.AddrPort
			if server {
				h, peer = connectServer(t, Config{}), fakeClient
			} else {
				h, peer = connectClient(t, Config{}), fakeServerSC
			}
			h.advance(4 * time.Second)
			h.expectEvents(EventStalled)
			if err := h.c.Send([]byte("queued")); err != nil {
				t.Fatal(err)
			}
			h.newSent()
			h.tr.log = nil
			h.recv(peer, "CLOSE")
			// The CLOSE is a sign of life (queue flushed), then CLOSED.
			want := []string{"event Unstalled", "send queued", "send CLOSED", "release", "event Close"}
			if !slices.Equal(h.tr.log, want) {
				t.Fatalf("on CLOSE: %q, want %q", h.tr.log, want)
			}
			if h.c.State() != StateClosed || h.tr.released != 1 {
				t.Fatalf("state %v released %d", h.c.State(), h.tr.released)
			}
			h.newSent()
			h.recv(peer, "CLOSE")
			h.expectSent(peer)
		})
	}
}

func TestConnStrangerDropped(t *testing.T) {
	for _, server := range []bool{false, true} {
		t.Run(fmt.Sprint("server=", server), func(t *testing.T) {
			var h *harness
			if server {
				h = connectServer(t, Config{})
			} else {
				h = connectClient(t, Config{})
			}
			before := h.c.Stats()
			for _, s := range []string{"evil", "CLOSE", "CLOSED", "PING", "CONNECT", "CONNECTED", "GO AWAY!", "CONNECT 192.0.2.1 40002"} {
				h.recv(fakeStranger, s)
			}
			after := h.c.Stats()
			if after.Dropped-before.Dropped != 8 {
				t.Errorf("Dropped went %d -> %d, want +8", before.Dropped, after.Dropped)
			}
			if after.Received != before.Received {
				t.Errorf("Received went %d -> %d for strangers", before.Received, after.Received)
			}
			h.expectEvents()
			h.expectSent(netip.AddrPort{})
			if h.c.State() != StateConnected || h.tr.released != 0 {
				t.Fatalf("state %v released %d after strangers", h.c.State(), h.tr.released)
			}
			if !server {
				// S repeating itself after we moved on is no stranger,
				// but it can no longer change anything either.
				h.recv(fakeServerS, "CONNECT 192.0.2.1 40002")
				h.recv(fakeServerS, "GO AWAY!")
				h.recv(fakeServerS, "CLOSE")
				h.expectEvents()
				h.expectSent(netip.AddrPort{})
				if h.c.State() != StateConnected || h.c.PeerAddr() != fakeServerSC {
					t.Fatalf("state %v peer %v", h.c.State(), h.c.PeerAddr())
				}
			}
		})
	}
}

func TestConnSendErrors(t *testing.T) {
	h := connectClient(t, Config{})
	for _, w := range []string{"HELLO", "HELLO ", "HELLO tok", "CONNECT", "CONNECT 127.0.0.1 40001",
		"CONNECT ::1 1", "CONNECTED", "GO AWAY!", "PING", "PONG", "CLOSE", "CLOSED"} {
		if err := h.c.Send([]byte(w)); !errors.Is(err, ErrControlWord) {
			t.Errorf("Send(%q) = %v, want ErrControlWord", w, err)
		}
	}
	h.expectSent(fakeServerSC)
	big := make([]byte, MaxDatagram+1)
	if err := h.c.Send(big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Send of %d bytes = %v, want ErrTooLarge", len(big), err)
	}
	if err := h.c.Send(big[:MaxDatagram]); err != nil {
		t.Errorf("Send of %d bytes = %v", MaxDatagram, err)
	}
	for _, ok := range []string{"", "PING\n", "ping", "CLOSE ", "HELLOx", "\x00"} {
		if err := h.c.Send([]byte(ok)); err != nil {
			t.Errorf("Send(%q) = %v, want nil", ok, err)
		}
	}
	got := h.newSent()
	if len(got) != 7 || len(got[0].data) != MaxDatagram || got[1].data != "" || got[2].data != "PING\n" {
		t.Errorf("sent %d datagrams, want the 7 valid ones", len(got))
	}
	if ErrTooLarge.Error() == "" || !strings.Contains(ErrTooLarge.Error(), "65507") {
		t.Errorf("ErrTooLarge = %q does not give the limit", ErrTooLarge)
	}
}

func TestConnStateString(t *testing.T) {
	for s, want := range map[State]string{StateHello: "hello", StateConnecting: "connecting",
		StateConnected: "connected", StateClosing: "closing", StateClosed: "closed"} {
		if s.String() != want {
			t.Errorf("State(%d).String() = %q, want %q", s, s.String(), want)
		}
	}
}

// A data socket offered for a HELLO that waited in the backlog expires a
// connect timeout after the HELLO came, not after the offer.
func TestServerHalfOpenTimedFromTheHello(t *testing.T) {
	clock := &ManualClock{}
	cfg := Config{Clock: clock}.withDefaults()
	tr := &fakeTransport{}
	c := &Conn{t: tr, cfg: &cfg, isServer: true, peer: fakeClient, local: fakeServerSC}
	helloAt := clock.Now()
	clock.Advance(3 * time.Second) // waited in the backlog
	c.startServer(clock.Now(), helloAt)
	if got, want := tr.wakes[len(tr.wakes)-1], helloAt.Add(cfg.ConnectTimeout); !got.Equal(want) {
		t.Errorf("timer set for %v after the HELLO, want %v", got.Sub(helloAt), cfg.ConnectTimeout)
	}
	clock.Advance(cfg.ConnectTimeout - 3*time.Second)
	c.tick(clock.Now())
	if c.State() != StateClosed || tr.released != 1 {
		t.Errorf("at the connect timeout after the HELLO: state %v, released %d", c.State(), tr.released)
	}
}
