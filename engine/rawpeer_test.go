package engine

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The wire protocol byte for byte, on real loopback UDP, against a peer
// written here with package net: our server against a raw client, and our
// client against a raw server.

const waitLimit = 3 * time.Second // how long any expected thing may take

// evRec records the events of an endpoint; it may be read from another
// goroutine than the one stepping the endpoint.
type evRec struct {
	mu  sync.Mutex
	evs []Event
}

func (r *evRec) handle(ev *Event) {
	e := *ev
	e.Data = append([]byte(nil), ev.Data...)
	r.mu.Lock()
	r.evs = append(r.evs, e)
	r.mu.Unlock()
}

func (r *evRec) kinds() []EventKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ks []EventKind
	for _, e := range r.evs {
		ks = append(ks, e.Kind)
	}
	return ks
}

func (r *evRec) count(k EventKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.evs {
		if e.Kind == k {
			n++
		}
	}
	return n
}

func (r *evRec) has(k EventKind) bool { return r.count(k) > 0 }

// last returns the last event of kind k.
func (r *evRec) last(k EventKind) (Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.evs) - 1; i >= 0; i-- {
		if r.evs[i].Kind == k {
			return r.evs[i], true
		}
	}
	return Event{}, false
}

func (r *evRec) messages() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ms [][]byte
	for _, e := range r.evs {
		if e.Kind == EventNewMessage {
			ms = append(ms, e.Data)
		}
	}
	return ms
}

// quietConfig has no pings, stalls or disconnects within a test's time,
// so that every datagram the raw peer sees is one the test asked for.
func quietConfig() Config {
	return Config{
		PingInterval:      time.Minute,
		StallTimeout:      2 * time.Minute,
		DisconnectTimeout: 3 * time.Minute,
		CloseLinger:       20 * time.Millisecond,
	}
}

// stepper returns a function that steps ep once for a millisecond.
func stepper(t *testing.T, ep *Endpoint) func() {
	return func() {
		t.Helper()
		if err := ep.Step(time.Millisecond); err != nil {
			t.Fatalf("Step: %v", err)
		}
	}
}

// waitFor calls step until cond holds.
func waitFor(t *testing.T, step func(), what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		step()
	}
}

// stepFor calls step for d.
func stepFor(step func(), d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
		step()
	}
}

// rawPeer is a plain UDP socket speaking the protocol by hand.
type rawPeer struct {
	t   *testing.T
	c   *net.UDPConn
	buf []byte
}

func newRawPeer(t *testing.T, addr string) *rawPeer {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawPeer{t: t, c: c, buf: make([]byte, 70000)}
}

func (p *rawPeer) addr() netip.AddrPort {
	ap := p.c.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (p *rawPeer) send(to netip.AddrPort, b []byte) {
	p.t.Helper()
	if _, err := p.c.WriteToUDPAddrPort(b, to); err != nil {
		p.t.Fatalf("raw send to %v: %v", to, err)
	}
}

func (p *rawPeer) sends(to netip.AddrPort, s string) { p.t.Helper(); p.send(to, []byte(s)) }

// tryRecv waits up to d for a datagram.
func (p *rawPeer) tryRecv(d time.Duration) ([]byte, netip.AddrPort, bool) {
	p.t.Helper()
	p.c.SetReadDeadline(time.Now().Add(d))
	n, from, err := p.c.ReadFromUDPAddrPort(p.buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, netip.AddrPort{}, false
		}
		p.t.Fatalf("raw recv: %v", err)
	}
	return append([]byte(nil), p.buf[:n]...), netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), true
}

// recv steps the endpoint until a datagram reaches the raw peer.
func (p *rawPeer) recv(step func()) ([]byte, netip.AddrPort) {
	p.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		step()
		if b, from, ok := p.tryRecv(time.Millisecond); ok {
			return b, from
		}
	}
	p.t.Fatalf("raw peer %v: nothing received", p.addr())
	return nil, netip.AddrPort{}
}

// expect steps until a datagram arrives and checks it is exactly want,
// from from.
func (p *rawPeer) expect(step func(), from netip.AddrPort, want string) {
	p.t.Helper()
	b, f := p.recv(step)
	if string(b) != want {
		p.t.Fatalf("raw peer got %q from %v, want %q from %v", quoteShort(b), f, want, from)
	}
	if f != from {
		p.t.Fatalf("raw peer got %q from %v, want it from %v", want, f, from)
	}
}

// expectNone steps for d and checks that nothing reaches the raw peer.
func (p *rawPeer) expectNone(step func(), d time.Duration) {
	p.t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); {
		step()
		if b, from, ok := p.tryRecv(time.Millisecond); ok {
			p.t.Fatalf("raw peer got %q from %v, want nothing", quoteShort(b), from)
		}
	}
}

func quoteShort(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%q... (%d bytes)", b[:40], len(b))
	}
	return string(b)
}

// countFDs counts the process's open file descriptors.
func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(ents)
}

// newRawServer makes one of our servers on addr.
func newRawServer(t *testing.T, addr string, cfg Config) (*Endpoint, *evRec, func()) {
	t.Helper()
	rec := &evRec{}
	srv := New(cfg, rec.handle)
	if err := srv.Listen(addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, rec, stepper(t, srv)
}

// rawConnect runs the handshake from the raw peer p to our server and
// returns the data socket SC and the server's connection.
func rawConnect(t *testing.T, p *rawPeer, srv *Endpoint, rec *evRec, step func(), hello string) (netip.AddrPort, *Conn) {
	t.Helper()
	p.sends(srv.Addr(), hello)
	b, from := p.recv(step)
	d := Parse(b)
	if from != srv.Addr() || d.Kind != KindConnectTo {
		t.Fatalf("answer to %q: %q from %v, want CONNECT <ip> <port> from %v", hello, b, from, srv.Addr())
	}
	sc := d.Addr
	p.sends(sc, "CONNECT")
	p.expect(step, sc, "CONNECTED")
	waitFor(t, step, "EventConnect", func() bool { return rec.count(EventConnect) > 0 })
	ev, _ := rec.last(EventConnect)
	return sc, ev.Conn
}

func TestRawServerHandshake(t *testing.T) {
	srv, rec, step := newRawServer(t, "127.0.0.1:0", quietConfig())
	S := srv.Addr()
	p := newRawPeer(t, "127.0.0.1:0")
	fds := countFDs(t)

	p.sends(S, "HELLO")
	b, from := p.recv(step)
	if from != S {
		t.Fatalf("answer from %v, want S %v", from, S)
	}
	d := Parse(b)
	if d.Kind != KindConnectTo {
		t.Fatalf("answer to HELLO: %q", b)
	}
	sc := d.Addr
	if want := "CONNECT 127.0.0.1 " + strconv.Itoa(int(sc.Port())); string(b) != want {
		t.Fatalf("answer %q, want %q", b, want)
	}
	if sc.Port() == S.Port() {
		t.Fatalf("data socket on the listening port %d", sc.Port())
	}
	waitFor(t, step, "EventNewClient", func() bool { return rec.count(EventNewClient) == 1 })
	nc, _ := rec.last(EventNewClient)
	if string(nc.Data) != "HELLO" || nc.Addr != p.addr() || nc.Local != sc || nc.Conn == nil {
		t.Fatalf("EventNewClient Data %q Addr %v Local %v Conn %v; want HELLO %v %v", nc.Data, nc.Addr, nc.Local, nc.Conn, p.addr(), sc)
	}
	if n := countFDs(t); n != fds+1 {
		t.Errorf("%d file descriptors after one HELLO, want %d", n, fds+1)
	}
	if st := srv.Stats(); st.HalfOpen != 1 || st.Clients != 0 {
		t.Errorf("Stats HalfOpen %d Clients %d, want 1 0", st.HalfOpen, st.Clients)
	}

	// Repeated HELLO: the same answer, no second socket.
	for i := 0; i < 3; i++ {
		p.sends(S, "HELLO")
		p.expect(step, S, string(b))
	}
	stepFor(step, 5*time.Millisecond)
	if n := rec.count(EventNewClient); n != 1 {
		t.Errorf("%d EventNewClient after repeated HELLOs, want 1", n)
	}
	if n := countFDs(t); n != fds+1 {
		t.Errorf("%d file descriptors after repeated HELLOs, want %d", n, fds+1)
	}

	// CONNECT to SC: CONNECTED from SC.
	p.sends(sc, "CONNECT")
	p.expect(step, sc, "CONNECTED")
	waitFor(t, step, "EventConnect", func() bool { return rec.count(EventConnect) == 1 })
	ce, _ := rec.last(EventConnect)
	if ce.Conn != nc.Conn || ce.Addr != p.addr() {
		t.Errorf("EventConnect Conn %p Addr %v, want %p %v", ce.Conn, ce.Addr, nc.Conn, p.addr())
	}
	// Repeated CONNECT: CONNECTED again, one EventConnect.
	p.sends(sc, "CONNECT")
	p.expect(step, sc, "CONNECTED")
	// HELLO while connected: still the same answer.
	p.sends(S, "HELLO")
	p.expect(step, S, string(b))
	stepFor(step, 5*time.Millisecond)
	if n := rec.count(EventConnect); n != 1 {
		t.Errorf("%d EventConnect, want 1", n)
	}
	if st := srv.Stats(); st.HalfOpen != 0 || st.Clients != 1 {
		t.Errorf("Stats HalfOpen %d Clients %d, want 0 1", st.HalfOpen, st.Clients)
	}
	conns := srv.Conns()
	if len(conns) != 1 || conns[0] != nc.Conn {
		t.Fatalf("Conns() = %v", conns)
	}
	if c := conns[0]; c.PeerAddr() != p.addr() || c.LocalAddr() != sc || c.State() != StateConnected {
		t.Errorf("conn peer %v local %v state %v", c.PeerAddr(), c.LocalAddr(), c.State())
	}
	if n := countFDs(t); n != fds+1 {
		t.Errorf("%d file descriptors with one client, want %d", n, fds+1)
	}
	if got := rec.kinds(); !slices.Equal(got, []EventKind{EventNewClient, EventConnect}) {
		t.Errorf("events %v", got)
	}
}

func TestRawServerTokens(t *testing.T) {
	for _, tc := range []struct {
		token, hello string
		ok           bool
	}{
		{"", "HELLO", true},
		{"", "HELLO ", true},
		{"", "HELLO x", false},
		{"secret", "HELLO secret", true},
		{"secret", "HELLO wrong", false},
		{"secret", "HELLO", false},
		{"secret", "HELLO ", false},
		{"secret", "HELLO Secret", false},
		{"secret", "HELLO secret ", false},
		{"tok en", "HELLO tok en", true},
	} {
		t.Run(fmt.Sprintf("%q/%q", tc.token, tc.hello), func(t *testing.T) {
			cfg := quietConfig()
			cfg.Token = tc.token
			srv, rec, step := newRawServer(t, "127.0.0.1:0", cfg)
			p := newRawPeer(t, "127.0.0.1:0")
			fds := countFDs(t)
			if tc.ok {
				rawConnect(t, p, srv, rec, step, tc.hello)
				return
			}
			p.sends(srv.Addr(), tc.hello)
			p.expect(step, srv.Addr(), "GO AWAY!")
			waitFor(t, step, "EventBadToken", func() bool { return rec.count(EventBadToken) == 1 })
			ev, _ := rec.last(EventBadToken)
			if string(ev.Data) != tc.hello || ev.Addr != p.addr() {
				t.Errorf("EventBadToken Data %q Addr %v, want %q %v", ev.Data, ev.Addr, tc.hello, p.addr())
			}
			if got := rec.kinds(); !slices.Equal(got, []EventKind{EventBadToken}) {
				t.Errorf("events %v, want only BadToken", got)
			}
			if st := srv.Stats(); st.HalfOpen != 0 || st.Clients != 0 {
				t.Errorf("Stats %+v after a refused HELLO", st)
			}
			if n := countFDs(t); n != fds {
				t.Errorf("a refused HELLO opened %d file descriptors", n-fds)
			}
		})
	}
}

func TestRawServerMaxClients(t *testing.T) {
	cfg := quietConfig()
	cfg.MaxClients = 1
	srv, rec, step := newRawServer(t, "127.0.0.1:0", cfg)
	p1 := newRawPeer(t, "127.0.0.1:0")
	p2 := newRawPeer(t, "127.0.0.1:0")
	S := srv.Addr()

	// A half-open connection already takes the place.
	p1.sends(S, "HELLO")
	b, _ := p1.recv(step)
	sc := Parse(b).Addr
	p2.sends(S, "HELLO")
	p2.expect(step, S, "GO AWAY!")
	waitFor(t, step, "EventMaxClients", func() bool { return rec.count(EventMaxClients) == 1 })
	ev, _ := rec.last(EventMaxClients)
	if string(ev.Data) != "HELLO" || ev.Addr != p2.addr() || ev.Conn != nil {
		t.Errorf("EventMaxClients Data %q Addr %v Conn %v, want HELLO %v nil", ev.Data, ev.Addr, ev.Conn, p2.addr())
	}
	p1.sends(sc, "CONNECT")
	p1.expect(step, sc, "CONNECTED")
	p2.sends(S, "HELLO x")
	p2.expect(step, S, "GO AWAY!")

	// When the first client leaves, the second gets in.
	p1.sends(sc, "CLOSE")
	p1.expect(step, sc, "CLOSED")
	waitFor(t, step, "EventClose", func() bool { return rec.count(EventClose) == 1 })
	rawConnect(t, p2, srv, rec, step, "HELLO")
	if n := rec.count(EventMaxClients); n != 1 {
		t.Errorf("%d EventMaxClients, want 1", n)
	}
	if n := rec.count(EventBadToken); n != 1 {
		t.Errorf("%d EventBadToken for the wrong token, want 1", n)
	}
}

func TestRawServerAnswersPing(t *testing.T) {
	srv, rec, step := newRawServer(t, "127.0.0.1:0", quietConfig())
	p := newRawPeer(t, "127.0.0.1:0")
	sc, conn := rawConnect(t, p, srv, rec, step, "HELLO")
	for i := 1; i <= 3; i++ {
		p.sends(sc, "PING")
		p.expect(step, sc, "PONG")
		waitFor(t, step, "EventPing", func() bool { return rec.count(EventPing) == i })
	}
	if ev, _ := rec.last(EventPing); ev.Conn != conn {
		t.Errorf("EventPing Conn %p, want %p", ev.Conn, conn)
	}
	// conn.Ping sends one at once.
	conn.Ping()
	p.expect(step, sc, "PING")
	p.sends(sc, "PONG")
	waitFor(t, step, "EventPong", func() bool { return rec.count(EventPong) == 1 })
}

func TestRawServerSendsPing(t *testing.T) {
	cfg := quietConfig()
	cfg.PingInterval = 50 * time.Millisecond
	srv, rec, step := newRawServer(t, "127.0.0.1:0", cfg)
	p := newRawPeer(t, "127.0.0.1:0")
	p.sends(srv.Addr(), "HELLO")
	b, _ := p.recv(step)
	sc := Parse(b).Addr
	start := time.Now() // the server hears CONNECT after this
	p.sends(sc, "CONNECT")
	p.expect(step, sc, "CONNECTED")
	waitFor(t, step, "EventConnect", func() bool { return rec.count(EventConnect) == 1 })
	ev, _ := rec.last(EventConnect)
	conn := ev.Conn
	p.expect(step, sc, "PING")
	if el := time.Since(start); el < 49*time.Millisecond {
		t.Errorf("PING after %v of silence, want the ping interval 50ms", el)
	}
	time.Sleep(2 * time.Millisecond)
	p.sends(sc, "PONG")
	waitFor(t, step, "EventPong", func() bool { return rec.count(EventPong) == 1 })
	if ev, _ := rec.last(EventPong); ev.Conn != conn {
		t.Errorf("EventPong Conn %p, want %p", ev.Conn, conn)
	}
	if rtt := conn.RTT(); rtt < time.Millisecond || rtt > time.Second {
		t.Errorf("RTT = %v, want the 2ms or so the raw peer took", rtt)
	}
	// Silence again: another PING.
	p.expect(step, sc, "PING")
}

// binaryData returns the messages the data tests send both ways.
func binaryData() [][]byte {
	big := make([]byte, MaxDatagram)
	rand.New(rand.NewSource(1)).Read(big)
	return [][]byte{
		{0, 1, 0, 2, 0},
		{},
		[]byte("hello"),
		[]byte("PING\n"),
		[]byte("close"),
		{0},
		big,
		[]byte("after the big one"),
	}
}

func TestRawServerData(t *testing.T) {
	srv, rec, step := newRawServer(t, "127.0.0.1:0", quietConfig())
	p := newRawPeer(t, "127.0.0.1:0")
	sc, conn := rawConnect(t, p, srv, rec, step, "HELLO")
	msgs := binaryData()
	for _, m := range msgs {
		p.send(sc, m)
	}
	waitFor(t, step, "all messages", func() bool { return len(rec.messages()) >= len(msgs) })
	got := rec.messages()
	if len(got) != len(msgs) {
		t.Fatalf("%d messages, want %d", len(got), len(msgs))
	}
	for i := range msgs {
		if !bytes.Equal(got[i], msgs[i]) {
			t.Errorf("message %d: got %d bytes %s, want %d bytes %s", i, len(got[i]), quoteShort(got[i]), len(msgs[i]), quoteShort(msgs[i]))
		}
	}
	for _, e := range rec.evs {
		if e.Kind == EventNewMessage && e.Conn != conn {
			t.Errorf("EventNewMessage Conn %p, want %p", e.Conn, conn)
		}
	}
	// And back, byte for byte, from SC.
	for _, m := range msgs {
		if err := conn.Send(m); err != nil {
			t.Fatalf("Send %d bytes: %v", len(m), err)
		}
	}
	for i, m := range msgs {
		b, from := p.recv(step)
		if from != sc || !bytes.Equal(b, m) {
			t.Fatalf("datagram %d from %v: %d bytes %s, want %d bytes %s from %v", i, from, len(b), quoteShort(b), len(m), quoteShort(m), sc)
		}
	}
	// Inside a handler too (sent at the end of the step).
	srv.handler = func(ev *Event) {
		rec.handle(ev)
		if ev.Kind == EventNewMessage {
			if err := ev.Conn.Send(ev.Data); err != nil {
				t.Error(err)
			}
		}
	}
	for _, m := range msgs {
		p.send(sc, m)
		b, _ := p.recv(step)
		if !bytes.Equal(b, m) {
			t.Fatalf("echo of %d bytes: %d bytes back", len(m), len(b))
		}
	}
	if err := conn.Send(make([]byte, MaxDatagram+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Send of %d bytes: %v, want ErrTooLarge", MaxDatagram+1, err)
	}
}

func TestRawServerPeerClose(t *testing.T) {
	srv, rec, step := newRawServer(t, "127.0.0.1:0", quietConfig())
	p := newRawPeer(t, "127.0.0.1:0")
	fds := countFDs(t)
	sc, conn := rawConnect(t, p, srv, rec, step, "HELLO")
	p.sends(sc, "CLOSE")
	p.expect(step, sc, "CLOSED")
	waitFor(t, step, "EventClose", func() bool { return rec.count(EventClose) == 1 })
	if ev, _ := rec.last(EventClose); ev.Conn != conn {
		t.Errorf("EventClose Conn %p, want %p", ev.Conn, conn)
	}
	if conn.State() != StateClosed || srv.Stats().Clients != 0 || len(srv.Conns()) != 0 {
		t.Errorf("state %v clients %d after CLOSE", conn.State(), srv.Stats().Clients)
	}
	if n := countFDs(t); n != fds {
		t.Errorf("%d file descriptors after CLOSE, want %d", n, fds)
	}
	// The data socket is gone: nothing more is delivered.
	p.sends(sc, "data")
	p.expectNone(step, 20*time.Millisecond)
	if len(rec.messages()) != 0 {
		t.Errorf("message delivered after CLOSE")
	}
	// The same client can come again: a new connection.
	_, conn2 := rawConnect(t, p, srv, rec, step, "HELLO")
	if conn2 == conn || rec.count(EventNewClient) != 2 {
		t.Errorf("no new connection after CLOSE")
	}
}

func TestRawServerInitiatedClose(t *testing.T) {
	t.Run("answered", func(t *testing.T) {
		srv, rec, step := newRawServer(t, "127.0.0.1:0", quietConfig())
		p := newRawPeer(t, "127.0.0.1:0")
		sc, conn := rawConnect(t, p, srv, rec, step, "HELLO")
		conn.Close()
		p.expect(step, sc, "CLOSE")
		if conn.State() != StateClosing {
			t.Errorf("state %v, want closing", conn.State())
		}
		if rec.count(EventClose) != 0 {
			t.Errorf("EventClose before CLOSED")
		}
		p.sends(sc, "CLOSED")
		waitFor(t, step, "EventClose", func() bool { return rec.count(EventClose) == 1 })
		if conn.State() != StateClosed {
			t.Errorf("state %v", conn.State())
		}
		p.expectNone(step, 20*time.Millisecond)
	})
	t.Run("unanswered", func(t *testing.T) {
		cfg := quietConfig()
		cfg.RetryInterval = 30 * time.Millisecond
		cfg.CloseRetries = 3
		srv, rec, step := newRawServer(t, "127.0.0.1:0", cfg)
		p := newRawPeer(t, "127.0.0.1:0")
		sc, conn := rawConnect(t, p, srv, rec, step, "HELLO")
		start := time.Now()
		conn.Close()
		for i := 0; i < 4; i++ {
			p.expect(step, sc, "CLOSE")
		}
		waitFor(t, step, "EventClose", func() bool { return rec.count(EventClose) == 1 })
		if el := time.Since(start); el < 100*time.Millisecond {
			t.Errorf("gave up after %v, want 4 retry intervals (120ms)", el)
		}
		p.expectNone(step, 40*time.Millisecond)
	})
}

func TestRawServerStranger(t *testing.T) {
	srv, rec, step := newRawServer(t, "127.0.0.1:0", quietConfig())
	p := newRawPeer(t, "127.0.0.1:0")
	q := newRawPeer(t, "127.0.0.1:0")
	sc, conn := rawConnect(t, p, srv, rec, step, "HELLO")
	before := srv.Stats()
	junk := []string{"evil data", "CLOSE", "PING", "CONNECT", "HELLO", "CLOSED", ""}
	for _, s := range junk {
		q.sends(sc, s)
	}
	q.expectNone(step, 30*time.Millisecond)
	p.expectNone(step, time.Millisecond)
	if n := len(rec.messages()); n != 0 {
		t.Errorf("%d messages from a stranger delivered", n)
	}
	if conn.State() != StateConnected || rec.count(EventClose) != 0 {
		t.Fatalf("a stranger closed the connection: state %v", conn.State())
	}
	after := srv.Stats()
	if d := after.Dropped - before.Dropped; d != uint64(len(junk)) {
		t.Errorf("Stats().Dropped went up by %d, want %d", d, len(junk))
	}
	if d := conn.Stats().Dropped; d != uint64(len(junk)) {
		t.Errorf("conn Stats().Dropped = %d, want %d", d, len(junk))
	}
	// The real client still talks.
	p.sends(sc, "real")
	waitFor(t, step, "the real message", func() bool { return len(rec.messages()) == 1 })
	if m := rec.messages()[0]; string(m) != "real" {
		t.Errorf("message %q", m)
	}
	p.sends(sc, "PING")
	p.expect(step, sc, "PONG")
}

func TestRawServerListenerIgnoresNonHello(t *testing.T) {
	srv, rec, step := newRawServer(t, "127.0.0.1:0", quietConfig())
	p := newRawPeer(t, "127.0.0.1:0")
	junk := []string{"PING", "CONNECT", "CONNECTED", "CLOSE", "data", "", "hello", "HELLO\n", "CONNECT 127.0.0.1 1"}
	for _, s := range junk {
		p.sends(srv.Addr(), s)
	}
	p.expectNone(step, 30*time.Millisecond)
	if got := rec.kinds(); len(got) != 0 {
		t.Errorf("events %v", got)
	}
	if st := srv.Stats(); st.Dropped != uint64(len(junk)) || st.Received != uint64(len(junk)) || st.HalfOpen != 0 {
		t.Errorf("Stats %+v, want %d received and dropped", st, len(junk))
	}
}

func TestRawServerHalfOpen(t *testing.T) {
	cfg := quietConfig()
	cfg.MaxHalfOpen = 2
	cfg.HalfOpenGrace = time.Nanosecond // evict at once; TestRawServerHalfOpenGrace checks the grace
	cfg.ConnectTimeout = 150 * time.Millisecond
	srv, rec, step := newRawServer(t, "127.0.0.1:0", cfg)
	S := srv.Addr()
	ps := []*rawPeer{newRawPeer(t, "127.0.0.1:0"), newRawPeer(t, "127.0.0.1:0"), newRawPeer(t, "127.0.0.1:0")}
	fds := countFDs(t)
	var scs []netip.AddrPort
	for _, p := range ps {
		p.sends(S, "HELLO")
		b, from := p.recv(step)
		d := Parse(b)
		if d.Kind != KindConnectTo || from != S {
			t.Fatalf("answer %q from %v", b, from)
		}
		scs = append(scs, d.Addr)
	}
	// The cap is kept: the oldest half-open socket made room for the
	// newest.
	if st := srv.Stats(); st.HalfOpen != 2 || st.Evicted != 1 {
		t.Errorf("Stats HalfOpen %d Evicted %d, want 2 1", st.HalfOpen, st.Evicted)
	}
	if n := countFDs(t); n != fds+2 {
		t.Errorf("%d file descriptors, want %d", n, fds+2)
	}
	ps[0].sends(scs[0], "CONNECT")
	ps[0].expectNone(step, 20*time.Millisecond)
	ps[2].sends(scs[2], "CONNECT")
	ps[2].expect(step, scs[2], "CONNECTED")
	if st := srv.Stats(); st.HalfOpen != 1 || st.Clients != 1 {
		t.Errorf("Stats HalfOpen %d Clients %d, want 1 1", st.HalfOpen, st.Clients)
	}
	// The other one expires, quietly.
	waitFor(t, step, "half-open expiry", func() bool { return srv.Stats().HalfOpen == 0 })
	want := []EventKind{EventNewClient, EventNewClient, EventNewClient, EventConnect}
	if got := rec.kinds(); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v: nothing for the eviction or the expiry", got, want)
	}
	if n := countFDs(t); n != fds+1 {
		t.Errorf("%d file descriptors after the expiry, want %d", n, fds+1)
	}
	ps[1].sends(scs[1], "CONNECT")
	ps[1].expectNone(step, 20*time.Millisecond)
	// And it can come again.
	rawConnect(t, ps[1], srv, rec, step, "HELLO")
}

// A flood of HELLOs that never claim their socket (spoofed sources, say)
// holds at most MaxHalfOpen sockets, and a real client still gets in.
func TestRawServerHelloFlood(t *testing.T) {
	cfg := quietConfig()
	cfg.MaxHalfOpen = 4
	cfg.HalfOpenGrace = 5 * time.Millisecond
	srv, rec, step := newRawServer(t, "127.0.0.1:0", cfg)
	var flood []*rawPeer
	for i := 0; i < 20; i++ {
		flood = append(flood, newRawPeer(t, "127.0.0.1:0"))
	}
	real := newRawPeer(t, "127.0.0.1:0")
	fds := countFDs(t)
	for round := 0; round < 3; round++ {
		for _, p := range flood {
			p.sends(srv.Addr(), "HELLO")
		}
		stepFor(step, 5*time.Millisecond)
		if n := countFDs(t); n > fds+4 {
			t.Fatalf("%d sockets for a flood of HELLOs, cap 4", n-fds)
		}
	}
	for _, p := range flood {
		p.sends(srv.Addr(), "HELLO")
	}
	stepFor(step, 10*time.Millisecond) // the flood's sockets outlive the grace period
	rawConnect(t, real, srv, rec, step, "HELLO")
	if st := srv.Stats(); st.Clients != 1 || st.HalfOpen > 4 {
		t.Errorf("Stats %+v", st)
	}
}

// The list of half-open connections must not keep every connection the
// server ever had (and with it the Conn and its Value): it grows with
// each HELLO accepted and is trimmed only when MaxHalfOpen is reached.
func TestRawServerHalfOpenListBounded(t *testing.T) {
	const n = 256
	cfg := quietConfig()
	cfg.MaxHalfOpen = 8
	srv, rec, step := newRawServer(t, "127.0.0.1:0", cfg)
	p := newRawPeer(t, "127.0.0.1:0")
	for i := 0; i < n; i++ {
		p.sends(srv.Addr(), "HELLO")
		b, _ := p.recv(step)
		sc := Parse(b).Addr
		p.sends(sc, "CONNECT")
		p.expect(step, sc, "CONNECTED")
		p.sends(sc, "CLOSE")
		p.expect(step, sc, "CLOSED")
	}
	waitFor(t, step, "all closes", func() bool { return rec.count(EventClose) == n })
	if st := srv.Stats(); st.HalfOpen != 0 || st.Clients != 0 {
		t.Errorf("Stats %+v", st)
	}
	if l := len(srv.halfOpen); l >= n/2 {
		t.Errorf("after %d connections, all closed, the server still holds %d of them in its half-open list (MaxHalfOpen %d)", n, l, cfg.MaxHalfOpen)
	}
}

// Answers to HELLO are rate-limited per source IP (loopback only when
// asked to).
func TestRawServerHelloRateLimit(t *testing.T) {
	cfg := quietConfig()
	cfg.HelloRate = 0.001
	cfg.HelloBurst = 2
	cfg.LimitLoopback = true
	cfg.Token = "secret"
	srv, _, step := newRawServer(t, "127.0.0.1:0", cfg)
	// Three sources on one IP: the third answer is over the burst.
	p1, p2, p3 := newRawPeer(t, "127.0.0.1:0"), newRawPeer(t, "127.0.0.1:0"), newRawPeer(t, "127.0.0.1:0")
	p1.sends(srv.Addr(), "HELLO secret")
	if b, _ := p1.recv(step); Parse(b).Kind != KindConnectTo {
		t.Fatalf("answer %q", b)
	}
	p2.sends(srv.Addr(), "HELLO bad")
	p2.expect(step, srv.Addr(), "GO AWAY!")
	p3.sends(srv.Addr(), "HELLO secret")
	p3.expectNone(step, 20*time.Millisecond)
	if st := srv.Stats(); st.HalfOpen != 1 {
		t.Errorf("Stats().HalfOpen = %d, want 1: a rate-limited HELLO opened a socket", st.HalfOpen)
	}
	if st := srv.Stats(); st.RateLimited != 1 {
		t.Errorf("Stats().RateLimited = %d, want 1", st.RateLimited)
	}
}

// HalfOpen counts the data sockets not yet claimed; a connection that is
// closing was claimed.
func TestRawServerStatsWhileClosing(t *testing.T) {
	srv, rec, step := newRawServer(t, "127.0.0.1:0", quietConfig())
	p := newRawPeer(t, "127.0.0.1:0")
	sc, conn := rawConnect(t, p, srv, rec, step, "HELLO")
	conn.Close()
	p.expect(step, sc, "CLOSE")
	if st := srv.Stats(); st.HalfOpen != 0 || st.Clients != 0 {
		t.Errorf("Stats while closing: HalfOpen %d Clients %d, want 0 0", st.HalfOpen, st.Clients)
	}
}

func TestRawServerWildcardAnnounce(t *testing.T) {
	srv, rec, step := newRawServer(t, "0.0.0.0:0", quietConfig())
	S := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), srv.Addr().Port())
	p := newRawPeer(t, "127.0.0.1:0")
	p.sends(S, "HELLO")
	b, from := p.recv(step)
	d := Parse(b)
	if from != S || d.Kind != KindConnectTo {
		t.Fatalf("answer %q from %v", b, from)
	}
	if want := "CONNECT 127.0.0.1 " + strconv.Itoa(int(d.Addr.Port())); string(b) != want {
		t.Fatalf("answer %q, want %q (the address the HELLO reached)", b, want)
	}
	p.sends(d.Addr, "CONNECT")
	p.expect(step, d.Addr, "CONNECTED")
	waitFor(t, step, "EventConnect", func() bool { return rec.count(EventConnect) == 1 })
}

func TestRawServerIPv6(t *testing.T) {
	probe, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("cannot bind [::1] on this machine: %v", err)
	}
	probe.Close()
	srv, rec, step := newRawServer(t, "[::1]:0", quietConfig())
	S := srv.Addr()
	if S.Addr() != netip.IPv6Loopback() {
		t.Fatalf("server on %v", S)
	}
	p := newRawPeer(t, "[::1]:0")
	p.sends(S, "HELLO")
	b, from := p.recv(step)
	d := Parse(b)
	if from != S || d.Kind != KindConnectTo {
		t.Fatalf("answer %q from %v", b, from)
	}
	if want := "CONNECT ::1 " + strconv.Itoa(int(d.Addr.Port())); string(b) != want {
		t.Fatalf("answer %q, want %q", b, want)
	}
	p.sends(d.Addr, "CONNECT")
	p.expect(step, d.Addr, "CONNECTED")
	waitFor(t, step, "EventConnect", func() bool { return rec.count(EventConnect) == 1 })
	ev, _ := rec.last(EventConnect)
	ev.Conn.Send([]byte("v6 data\x00"))
	p.expect(step, d.Addr, "v6 data\x00")
	p.sends(d.Addr, "CLOSE")
	p.expect(step, d.Addr, "CLOSED")
}

// Our client against a raw server: S and SC are two raw sockets.

type rawServerSide struct {
	S, SC  *rawPeer
	cli    *Endpoint
	conn   *Conn
	rec    *evRec
	step   func()
	caddr  netip.AddrPort // where the client's datagrams come from
	hellos int

	started     time.Time // before Connect
	connectedAt time.Time // before SC sent CONNECTED
}

func newRawServerSide(t *testing.T, cfg Config) *rawServerSide {
	t.Helper()
	r := &rawServerSide{S: newRawPeer(t, "127.0.0.1:0"), SC: newRawPeer(t, "127.0.0.1:0"), rec: &evRec{}}
	r.cli = New(cfg, r.rec.handle)
	t.Cleanup(func() { r.cli.Close() })
	r.started = time.Now()
	conn, err := r.cli.Connect(r.S.addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r.conn = conn
	r.step = stepper(t, r.cli)
	return r
}

// hello reads the client's HELLO at S and checks its token: exactly
// "HELLO <token>", or for the empty token "HELLO" or "HELLO ".
func (r *rawServerSide) hello(t *testing.T, token string) {
	t.Helper()
	b, from := r.S.recv(r.step)
	d := Parse(b)
	ok := d.Kind == KindHello && string(d.Token) == token
	if token != "" {
		ok = string(b) == "HELLO "+token
	}
	if !ok {
		t.Fatalf("S got %q, want HELLO with token %q", b, token)
	}
	if r.caddr.IsValid() && from != r.caddr {
		t.Fatalf("HELLO from %v, before from %v", from, r.caddr)
	}
	r.caddr = from
	if from.Port() != r.conn.LocalAddr().Port() {
		t.Errorf("HELLO from port %d, client socket on %v", from.Port(), r.conn.LocalAddr())
	}
	r.hellos++
}

// connect takes the client through the handshake.
func (r *rawServerSide) connect(t *testing.T) {
	t.Helper()
	r.hello(t, "")
	r.S.sends(r.caddr, "CONNECT 127.0.0.1 "+strconv.Itoa(int(r.SC.addr().Port())))
	r.SC.expect(r.step, r.caddr, "CONNECT")
	r.connectedAt = time.Now()
	r.SC.sends(r.caddr, "CONNECTED")
	waitFor(t, r.step, "EventConnect", func() bool { return r.rec.count(EventConnect) == 1 })
}

func TestRawClientHandshake(t *testing.T) {
	cfg := quietConfig()
	cfg.Token = "tok"
	cfg.RetryInterval = 50 * time.Millisecond
	r := newRawServerSide(t, cfg)
	if r.conn.State() != StateHello {
		t.Fatalf("state %v", r.conn.State())
	}
	r.hello(t, "tok")
	r.hello(t, "tok") // unanswered: sent again
	if el := time.Since(r.started); el < 49*time.Millisecond {
		t.Errorf("HELLO re-sent %v after Connect, want the retry interval 50ms", el)
	}
	sc := r.SC.addr()
	start := time.Now()
	r.S.sends(r.caddr, "CONNECT 127.0.0.1 "+strconv.Itoa(int(sc.Port())))
	r.SC.expect(r.step, r.caddr, "CONNECT")
	ev, ok := r.rec.last(EventConnecting)
	if !ok || ev.Addr != sc || ev.Conn != r.conn {
		t.Fatalf("EventConnecting %v %v, want Addr %v", ok, ev.Addr, sc)
	}
	r.SC.expect(r.step, r.caddr, "CONNECT") // unanswered: sent again
	if el := time.Since(start); el < 49*time.Millisecond {
		t.Errorf("CONNECT re-sent after %v, want the retry interval 50ms", el)
	}
	r.SC.sends(r.caddr, "CONNECTED")
	waitFor(t, r.step, "EventConnect", func() bool { return r.rec.count(EventConnect) == 1 })
	ev, _ = r.rec.last(EventConnect)
	if ev.Addr != sc || ev.Conn != r.conn || r.conn.State() != StateConnected || r.conn.PeerAddr() != sc {
		t.Fatalf("EventConnect Addr %v state %v peer %v, want %v", ev.Addr, r.conn.State(), r.conn.PeerAddr(), sc)
	}
	// Nothing more: no HELLO, no CONNECT.
	r.S.expectNone(r.step, 120*time.Millisecond)
	r.SC.expectNone(r.step, time.Millisecond)
	if got := r.rec.kinds(); !slices.Equal(got, []EventKind{EventConnecting, EventConnect}) {
		t.Errorf("events %v", got)
	}
	if conns := r.cli.Conns(); len(conns) != 1 || conns[0] != r.conn || r.cli.Client() != r.conn {
		t.Errorf("Conns() %v Client() %v", conns, r.cli.Client())
	}
}

func TestRawClientEmptyToken(t *testing.T) {
	r := newRawServerSide(t, quietConfig())
	b, _ := r.S.recv(r.step)
	if d := Parse(b); d.Kind != KindHello || len(d.Token) != 0 || (string(b) != "HELLO" && string(b) != "HELLO ") {
		t.Fatalf("S got %q, want HELLO with the empty token", b)
	}
}

func TestRawClientUnspecifiedAnnounce(t *testing.T) {
	r := newRawServerSide(t, quietConfig())
	r.hello(t, "")
	r.S.sends(r.caddr, "CONNECT 0.0.0.0 "+strconv.Itoa(int(r.SC.addr().Port())))
	r.SC.expect(r.step, r.caddr, "CONNECT")
	if ev, _ := r.rec.last(EventConnecting); ev.Addr != r.SC.addr() {
		t.Errorf("EventConnecting Addr %v, want %v", ev.Addr, r.SC.addr())
	}
	r.SC.sends(r.caddr, "CONNECTED")
	waitFor(t, r.step, "EventConnect", func() bool { return r.rec.count(EventConnect) == 1 })
}

func TestRawClientPing(t *testing.T) {
	t.Run("answers", func(t *testing.T) {
		r := newRawServerSide(t, quietConfig())
		r.connect(t)
		r.SC.sends(r.caddr, "PING")
		r.SC.expect(r.step, r.caddr, "PONG")
		waitFor(t, r.step, "EventPing", func() bool { return r.rec.count(EventPing) == 1 })
	})
	t.Run("sends", func(t *testing.T) {
		cfg := quietConfig()
		cfg.PingInterval = 50 * time.Millisecond
		r := newRawServerSide(t, cfg)
		r.connect(t)
		r.SC.expect(r.step, r.caddr, "PING")
		if el := time.Since(r.connectedAt); el < 49*time.Millisecond {
			t.Errorf("PING after %v of silence, want about 50ms", el)
		}
		time.Sleep(2 * time.Millisecond)
		r.SC.sends(r.caddr, "PONG")
		waitFor(t, r.step, "EventPong", func() bool { return r.rec.count(EventPong) == 1 })
		if rtt := r.conn.RTT(); rtt < time.Millisecond || rtt > time.Second {
			t.Errorf("RTT %v", rtt)
		}
	})
}

func TestRawClientData(t *testing.T) {
	r := newRawServerSide(t, quietConfig())
	r.connect(t)
	msgs := binaryData()
	for _, m := range msgs {
		r.SC.send(r.caddr, m)
	}
	waitFor(t, r.step, "all messages", func() bool { return len(r.rec.messages()) >= len(msgs) })
	got := r.rec.messages()
	if len(got) != len(msgs) {
		t.Fatalf("%d messages, want %d", len(got), len(msgs))
	}
	for i := range msgs {
		if !bytes.Equal(got[i], msgs[i]) {
			t.Errorf("message %d: %d bytes, want %d", i, len(got[i]), len(msgs[i]))
		}
	}
	for _, m := range msgs {
		if err := r.conn.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range msgs {
		b, from := r.SC.recv(r.step)
		if from != r.caddr || !bytes.Equal(b, m) {
			t.Fatalf("datagram %d from %v: %d bytes, want %d from %v", i, from, len(b), len(m), r.caddr)
		}
	}
	// Data from S or a stranger is not data of the connection.
	q := newRawPeer(t, "127.0.0.1:0")
	q.sends(r.caddr, "stranger")
	r.S.sends(r.caddr, "from S")
	stepFor(r.step, 20*time.Millisecond)
	if n := len(r.rec.messages()); n != len(msgs) {
		t.Errorf("%d messages, want %d: a stranger injected data", n, len(msgs))
	}
}

func TestRawClientClose(t *testing.T) {
	t.Run("by the server", func(t *testing.T) {
		r := newRawServerSide(t, quietConfig())
		r.connect(t)
		r.SC.sends(r.caddr, "CLOSE")
		r.SC.expect(r.step, r.caddr, "CLOSED")
		waitFor(t, r.step, "EventClose", func() bool { return r.rec.count(EventClose) == 1 })
		if r.conn.State() != StateClosed {
			t.Errorf("state %v", r.conn.State())
		}
	})
	t.Run("by the client", func(t *testing.T) {
		r := newRawServerSide(t, quietConfig())
		r.connect(t)
		r.conn.Close()
		r.SC.expect(r.step, r.caddr, "CLOSE")
		r.SC.sends(r.caddr, "CLOSED")
		waitFor(t, r.step, "EventClose", func() bool { return r.rec.count(EventClose) == 1 })
		if r.conn.State() != StateClosed {
			t.Errorf("state %v", r.conn.State())
		}
		r.SC.expectNone(r.step, 20*time.Millisecond)
	})
	t.Run("stranger", func(t *testing.T) {
		r := newRawServerSide(t, quietConfig())
		r.connect(t)
		q := newRawPeer(t, "127.0.0.1:0")
		q.sends(r.caddr, "CLOSE")
		q.expectNone(r.step, 20*time.Millisecond)
		if r.conn.State() != StateConnected || r.rec.count(EventClose) != 0 {
			t.Fatalf("a stranger closed the client: state %v", r.conn.State())
		}
		if st := r.cli.Stats(); st.Dropped != 1 {
			t.Errorf("Stats().Dropped = %d, want 1", st.Dropped)
		}
	})
}

func TestRawClientGoAway(t *testing.T) {
	cfg := quietConfig()
	cfg.RetryInterval = 30 * time.Millisecond
	r := newRawServerSide(t, cfg)
	r.hello(t, "")
	// From a stranger it means nothing.
	q := newRawPeer(t, "127.0.0.1:0")
	q.sends(r.caddr, "GO AWAY!")
	r.hello(t, "")
	if r.conn.State() != StateHello {
		t.Fatalf("state %v after a stranger's GO AWAY!", r.conn.State())
	}
	r.S.sends(r.caddr, "GO AWAY!")
	waitFor(t, r.step, "EventDisconnect", func() bool { return r.rec.count(EventDisconnect) == 1 })
	if got := r.rec.kinds(); !slices.Equal(got, []EventKind{EventMaxClients, EventDisconnect}) {
		t.Fatalf("events %v, want MaxClients, Disconnect", got)
	}
	ev, _ := r.rec.last(EventMaxClients)
	if string(ev.Data) != "GO AWAY!" || ev.Addr != r.S.addr() || ev.Conn != r.conn {
		t.Errorf("EventMaxClients Data %q Addr %v, want GO AWAY! from %v", ev.Data, ev.Addr, r.S.addr())
	}
	if r.conn.State() != StateClosed {
		t.Errorf("state %v", r.conn.State())
	}
	r.S.expectNone(r.step, 100*time.Millisecond) // no more HELLO
}

// A server that announces an address of the other family (IPv6 to an
// IPv4 client, whose socket cannot reach it) must not crash the client:
// the data socket is taken to be where the client reached the server,
// as for an unspecified address.
func TestRawClientConnectToOtherFamily(t *testing.T) {
	cfg := quietConfig()
	cfg.RetryInterval = 30 * time.Millisecond
	r := newRawServerSide(t, cfg)
	r.hello(t, "")
	r.S.sends(r.caddr, "CONNECT ::1 "+strconv.Itoa(int(r.SC.addr().Port())))
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("Step panicked on \"CONNECT ::1 <port>\" sent to an IPv4 client: %v", p)
			}
		}()
		r.SC.expect(r.step, r.caddr, "CONNECT")
	}()
	if ev, _ := r.rec.last(EventConnecting); ev.Addr != r.SC.addr() {
		t.Errorf("EventConnecting Addr %v, want %v", ev.Addr, r.SC.addr())
	}
	r.SC.sends(r.caddr, "CONNECTED")
	waitFor(t, r.step, "EventConnect", func() bool { return r.rec.count(EventConnect) == 1 })
	if st := r.cli.Stats(); st.SendErrors != 0 {
		t.Errorf("SendErrors = %d", st.SendErrors)
	}
}

func TestRawClientIPv6(t *testing.T) {
	probe, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("cannot bind [::1] on this machine: %v", err)
	}
	probe.Close()
	S, SC := newRawPeer(t, "[::1]:0"), newRawPeer(t, "[::1]:0")
	rec := &evRec{}
	cli := New(quietConfig(), rec.handle)
	t.Cleanup(func() { cli.Close() })
	if _, err := cli.Connect(S.addr().String()); err != nil {
		t.Fatal(err)
	}
	step := stepper(t, cli)
	b, from := S.recv(step)
	if Parse(b).Kind != KindHello || !from.Addr().Is6() {
		t.Fatalf("S got %q from %v", b, from)
	}
	S.sends(from, "CONNECT ::1 "+strconv.Itoa(int(SC.addr().Port())))
	SC.expect(step, from, "CONNECT")
	SC.sends(from, "CONNECTED")
	waitFor(t, step, "EventConnect", func() bool { return rec.count(EventConnect) == 1 })
	SC.sends(from, "PING")
	SC.expect(step, from, "PONG")
}

// A server bound to the IPv6 wildcard is dual-stack: an IPv4 client is
// told the IPv4 address it reached, an IPv6 client the IPv6 one.
func TestRawServerDualStack(t *testing.T) {
	probe, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("cannot bind [::1] on this machine: %v", err)
	}
	probe.Close()
	srv, rec, step := newRawServer(t, "[::]:0", quietConfig())
	port := srv.Addr().Port()
	for i, tc := range []struct{ local, server, ip string }{
		{"127.0.0.1:0", "127.0.0.1", "127.0.0.1"},
		{"[::1]:0", "::1", "::1"},
	} {
		p := newRawPeer(t, tc.local)
		S := netip.AddrPortFrom(netip.MustParseAddr(tc.server), port)
		p.sends(S, "HELLO")
		b, from := p.recv(step)
		d := Parse(b)
		if from != S || d.Kind != KindConnectTo {
			t.Fatalf("%s: answer %q from %v", tc.local, b, from)
		}
		if want := "CONNECT " + tc.ip + " " + strconv.Itoa(int(d.Addr.Port())); string(b) != want {
			t.Fatalf("%s: answer %q, want %q", tc.local, b, want)
		}
		p.sends(d.Addr, "CONNECT")
		p.expect(step, d.Addr, "CONNECTED")
		waitFor(t, step, "EventConnect", func() bool { return rec.count(EventConnect) == i+1 })
		p.sends(d.Addr, "PING")
		p.expect(step, d.Addr, "PONG")
	}
}

// A side that was paused (a debugger, a slow frame) takes in what waited
// for it before it judges its timers: no false stall.
func TestRawServerNoFalseStallAfterPause(t *testing.T) {
	cfg := quietConfig()
	cfg.PingInterval = 40 * time.Millisecond
	cfg.StallTimeout = 100 * time.Millisecond
	cfg.DisconnectTimeout = 200 * time.Millisecond
	srv, rec, step := newRawServer(t, "127.0.0.1:0", cfg)
	p := newRawPeer(t, "127.0.0.1:0")
	sc, conn := rawConnect(t, p, srv, rec, step, "HELLO")
	// The server is not stepped for 250ms; the client talks all along.
	for end := time.Now().Add(250 * time.Millisecond); time.Now().Before(end); {
		p.sends(sc, "still here")
		time.Sleep(10 * time.Millisecond)
	}
	stepFor(step, 5*time.Millisecond)
	if n := rec.count(EventStalled); n != 0 {
		t.Errorf("%d EventStalled after a pause although the client talked all along", n)
	}
	if n := rec.count(EventDisconnect); n != 0 || conn.State() != StateConnected {
		t.Errorf("disconnected after a pause although the client talked all along: %v", rec.kinds())
	}
	if len(rec.messages()) < 10 {
		t.Errorf("only %d messages", len(rec.messages()))
	}
}

// A half-open socket younger than the grace period is not given back: a
// HELLO that finds the cap reached waits in the backlog until the oldest
// has waited that long, then takes its place, without having to be sent
// again.
func TestRawServerHalfOpenGrace(t *testing.T) {
	cfg := quietConfig()
	cfg.MaxHalfOpen = 1
	cfg.HalfOpenGrace = 100 * time.Millisecond
	srv, rec, step := newRawServer(t, "127.0.0.1:0", cfg)
	S := srv.Addr()
	first, second := newRawPeer(t, "127.0.0.1:0"), newRawPeer(t, "127.0.0.1:0")
	first.sends(S, "HELLO")
	if b, _ := first.recv(step); Parse(b).Kind != KindConnectTo {
		t.Fatalf("first HELLO answered %q", b)
	}
	offered := time.Now()
	second.sends(S, "HELLO")
	second.sends(S, "HELLO") // a retry keeps its place
	second.expectNone(step, 20*time.Millisecond)
	if st := srv.Stats(); st.Backlog != 1 || st.Evicted != 0 || st.HalfOpen != 1 {
		t.Errorf("within the grace: Backlog %d Evicted %d HalfOpen %d, want 1 0 1", st.Backlog, st.Evicted, st.HalfOpen)
	}
	b, _ := second.recv(step)
	waited := time.Since(offered)
	if Parse(b).Kind != KindConnectTo {
		t.Fatalf("the HELLO from the backlog answered %q", b)
	}
	if waited < 90*time.Millisecond {
		t.Errorf("admitted after %v, inside the grace of 100ms", waited)
	}
	if st := srv.Stats(); st.Evicted != 1 || st.HalfOpen != 1 || st.Backlog != 0 {
		t.Errorf("after the grace: Evicted %d HalfOpen %d Backlog %d, want 1 1 0", st.Evicted, st.HalfOpen, st.Backlog)
	}
	if n := rec.count(EventNewClient); n != 2 {
		t.Errorf("%d EventNewClient, want 2", n)
	}
}

// A claimed socket makes room at once for a HELLO in the backlog.
func TestRawServerBacklogAdmitsOnClaim(t *testing.T) {
	cfg := quietConfig()
	cfg.MaxHalfOpen = 1
	cfg.HalfOpenGrace = time.Hour
	srv, _, step := newRawServer(t, "127.0.0.1:0", cfg)
	S := srv.Addr()
	first, second := newRawPeer(t, "127.0.0.1:0"), newRawPeer(t, "127.0.0.1:0")
	first.sends(S, "HELLO")
	b, _ := first.recv(step)
	sc := Parse(b).Addr
	second.sends(S, "HELLO")
	second.expectNone(step, 20*time.Millisecond)
	first.sends(sc, "CONNECT")
	first.expect(step, sc, "CONNECTED")
	if b, _ := second.recv(step); Parse(b).Kind != KindConnectTo {
		t.Fatalf("the HELLO from the backlog answered %q", b)
	}
}
