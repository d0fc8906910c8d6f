package engine

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Our client and our server together on loopback.

// duo is a server and a client endpoint, stepped by the test.
type duo struct {
	t              *testing.T
	server, client *Endpoint
	srec, crec     *evRec
	conn           *Conn // the client's connection
	sconn          *Conn // the server's connection, once connected
}

func newDuo(t *testing.T, scfg, ccfg Config) *duo {
	t.Helper()
	d := &duo{t: t, srec: &evRec{}, crec: &evRec{}}
	d.server = New(scfg, d.srec.handle)
	if err := d.server.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	d.client = New(ccfg, d.crec.handle)
	c, err := d.client.Connect(d.server.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	d.conn = c
	t.Cleanup(func() { d.client.Close(); d.server.Close() })
	return d
}

// step steps both sides once.
func (d *duo) step() {
	d.t.Helper()
	if err := d.server.Step(time.Millisecond); err != nil {
		d.t.Fatalf("server Step: %v", err)
	}
	if err := d.client.Step(time.Millisecond); err != nil {
		d.t.Fatalf("client Step: %v", err)
	}
}

func (d *duo) until(what string, cond func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			d.t.Fatalf("timed out waiting for %s; server events %v, client events %v", what, d.srec.kinds(), d.crec.kinds())
		}
		d.step()
	}
}

// connect runs the handshake.
func (d *duo) connect() {
	d.t.Helper()
	d.until("connect", func() bool { return d.crec.count(EventConnect) == 1 && d.srec.count(EventConnect) == 1 })
	ev, _ := d.srec.last(EventConnect)
	d.sconn = ev.Conn
}

// echo makes the server echo every message with the prefix "echo:".
func (d *duo) echo() {
	d.server.handler = func(ev *Event) {
		d.srec.handle(ev)
		if ev.Kind == EventNewMessage {
			if err := ev.Conn.Send(append([]byte("echo:"), ev.Data...)); err != nil {
				d.t.Errorf("echo: %v", err)
			}
		}
	}
}

func strs(bs [][]byte) []string {
	var s []string
	for _, b := range bs {
		s = append(s, string(b))
	}
	return s
}

func TestEndpointCloseNotifiesPeer(t *testing.T) {
	t.Run("client closes", func(t *testing.T) {
		cfg := quietConfig()
		d := newDuo(t, cfg, cfg)
		d.connect()
		if err := d.client.Close(); err != nil {
			t.Fatal(err)
		}
		// The client's own EventClose came out of Close.
		if got := d.crec.kinds(); !slices.Equal(got, []EventKind{EventConnecting, EventConnect, EventClose}) {
			t.Errorf("client events %v", got)
		}
		start := time.Now()
		waitFor(t, stepper(t, d.server), "server EventClose", func() bool { return d.srec.count(EventClose) == 1 })
		if el := time.Since(start); el > 500*time.Millisecond {
			t.Errorf("server saw the close after %v", el)
		}
		if ev, _ := d.srec.last(EventClose); ev.Conn != d.sconn {
			t.Errorf("server EventClose for %v, want %v", ev.Conn, d.sconn)
		}
		if d.srec.count(EventDisconnect) != 0 {
			t.Errorf("server saw a disconnect, not a close")
		}
	})
	t.Run("server closes", func(t *testing.T) {
		cfg := quietConfig()
		d := newDuo(t, cfg, cfg)
		d.connect()
		if err := d.server.Close(); err != nil {
			t.Fatal(err)
		}
		if d.srec.count(EventClose) != 1 {
			t.Errorf("server events %v, want its EventClose from Close", d.srec.kinds())
		}
		start := time.Now()
		for d.crec.count(EventClose) == 0 {
			if time.Since(start) > waitLimit {
				t.Fatalf("client never saw the close: %v", d.crec.kinds())
			}
			if err := d.client.Step(time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}
		if el := time.Since(start); el > 500*time.Millisecond {
			t.Errorf("client saw the close after %v", el)
		}
		if d.conn.State() != StateClosed {
			t.Errorf("client state %v", d.conn.State())
		}
	})
}

// Close waits for the peers' CLOSED, but no longer than it must.
func TestEndpointCloseReturnsWhenAnswered(t *testing.T) {
	scfg := quietConfig()
	ccfg := quietConfig()
	ccfg.CloseLinger = 5 * time.Second
	d := newDuo(t, scfg, ccfg)
	d.connect()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the server answers meanwhile
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := d.server.Step(time.Millisecond); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	start := time.Now()
	d.client.Close()
	el := time.Since(start)
	close(stop)
	wg.Wait()
	if el > 2*time.Second {
		t.Errorf("Close took %v although the server answered CLOSED", el)
	}
	if d.crec.count(EventClose) != 1 || d.srec.count(EventClose) != 1 {
		t.Errorf("client events %v, server events %v", d.crec.kinds(), d.srec.kinds())
	}
}

// Close with a peer that does not answer: it waits about the close
// linger, re-sending CLOSE meanwhile.
func TestEndpointCloseLinger(t *testing.T) {
	cfg := quietConfig()
	cfg.CloseLinger = 100 * time.Millisecond
	srv, rec, step := newRawServer(t, "127.0.0.1:0", cfg)
	p := newRawPeer(t, "127.0.0.1:0")
	sc, _ := rawConnect(t, p, srv, rec, step, "HELLO")
	start := time.Now()
	srv.Close()
	el := time.Since(start)
	if el < 80*time.Millisecond || el > time.Second {
		t.Errorf("Close took %v, want about the 100ms linger", el)
	}
	if rec.count(EventClose) != 1 {
		t.Errorf("events %v, want EventClose from Close", rec.kinds())
	}
	closes := 0
	for {
		b, from, ok := p.tryRecv(10 * time.Millisecond)
		if !ok {
			break
		}
		if string(b) != "CLOSE" || from != sc {
			t.Errorf("raw peer got %q from %v", b, from)
		}
		closes++
	}
	if closes < 2 {
		t.Errorf("CLOSE sent %d times during the linger, want it re-sent", closes)
	}
}

func TestEndpointAfterClose(t *testing.T) {
	cfg := quietConfig()
	d := newDuo(t, cfg, cfg)
	d.connect()
	d.client.Close()
	if err := d.client.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := d.client.Step(time.Millisecond); err == nil {
		t.Error("Step after Close: no error")
	}
	if err := d.conn.Send([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close: %v, want ErrClosed", err)
	}
	if _, err := d.client.Connect(d.server.Addr().String()); err == nil {
		t.Error("Connect after Close: no error")
	}
	if err := d.client.Listen("127.0.0.1:0"); err == nil {
		t.Error("Listen after Close: no error")
	}
}

func TestEndpointNoLeaks(t *testing.T) {
	cfg := quietConfig()
	cfg.CloseLinger = 30 * time.Millisecond
	// Warm up whatever the process opens once.
	func() {
		d := newDuo(t, cfg, cfg)
		d.connect()
		d.client.Close()
		d.server.Close()
	}()
	fds := countFDs(t)
	goroutines := runtime.NumGoroutine()

	srv, srec, sstep := newRawServer(t, "127.0.0.1:0", cfg)
	var clients []*Endpoint
	var crecs []*evRec
	for i := 0; i < 5; i++ {
		rec := &evRec{}
		c := New(cfg, rec.handle)
		if _, err := c.Connect(srv.Addr().String()); err != nil {
			t.Fatal(err)
		}
		clients, crecs = append(clients, c), append(crecs, rec)
	}
	waitFor(t, func() {
		sstep()
		for _, c := range clients {
			if err := c.Step(0); err != nil {
				t.Fatal(err)
			}
		}
	}, "5 clients", func() bool {
		for _, r := range crecs {
			if r.count(EventConnect) != 1 {
				return false
			}
		}
		return srec.count(EventConnect) == 5
	})
	if n, want := countFDs(t), fds+11+serverPollerFDs; n != want { // S, 5 SC, 5 C, the server's poller
		t.Errorf("%d more file descriptors with 5 clients, want %d", n-fds, want-fds)
	}
	srv.Close()
	if n := srec.count(EventClose); n != 5 {
		t.Errorf("server reported %d EventClose, want 5", n)
	}
	for i, c := range clients {
		waitFor(t, func() {
			if err := c.Step(time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}, "client EventClose", func() bool { return crecs[i].count(EventClose) == 1 })
		c.Close()
	}
	if n := countFDs(t); n != fds {
		t.Errorf("%d file descriptors after closing everything, want %d", n, fds)
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		t.Errorf("%d goroutines after closing everything, want %d", n, goroutines)
	}
}

func TestEndpointListenError(t *testing.T) {
	a := New(quietConfig(), nil)
	if err := a.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	addr := a.Addr().String()
	fds := countFDs(t)
	b := New(quietConfig(), nil)
	err := b.Listen(addr)
	if err == nil {
		b.Close()
		t.Fatalf("Listen twice on %v: no error", addr)
	}
	if msg := err.Error(); !strings.Contains(msg, addr) || !strings.Contains(msg, "address already in use") {
		t.Errorf("Listen error %q does not name %s and the reason", msg, addr)
	}
	if n := countFDs(t); n != fds {
		t.Errorf("a failed Listen left %d file descriptors open", n-fds)
	}
	b.Close()
	if err := a.Listen("127.0.0.1:0"); err == nil {
		t.Error("Listen on an endpoint already listening: no error")
	}
	for _, bad := range []string{"nonsense", "127.0.0.1:99999", "127.0.0.1:x"} {
		e := New(Config{}, nil)
		if err := e.Listen(bad); err == nil {
			t.Errorf("Listen(%q): no error", bad)
		}
		e.Close()
	}
}

func TestEndpointStepWaits(t *testing.T) {
	srv := New(quietConfig(), nil)
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	start := time.Now()
	if err := srv.Step(20 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 15*time.Millisecond {
		t.Errorf("idle Step(20ms) returned after %v", el)
	}
	start = time.Now()
	if err := srv.Step(0); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Errorf("Step(0) took %v", el)
	}
}

// sendLater sends a datagram to to from a fresh socket after d, from
// another goroutine.
func sendLater(t *testing.T, to netip.AddrPort, d time.Duration) *sync.WaitGroup {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer c.Close()
		time.Sleep(d)
		if _, err := c.WriteToUDPAddrPort([]byte("wake up"), to); err != nil {
			t.Error(err)
		}
	}()
	return &wg
}

func TestEndpointStepReturnsOnDatagram(t *testing.T) {
	t.Run("server", func(t *testing.T) {
		srv := New(quietConfig(), nil)
		if err := srv.Listen("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		wg := sendLater(t, srv.Addr(), 10*time.Millisecond)
		start := time.Now()
		if err := srv.Step(2 * time.Second); err != nil {
			t.Fatal(err)
		}
		el := time.Since(start)
		wg.Wait()
		if el > time.Second {
			t.Errorf("Step(2s) returned after %v although a datagram came after 10ms", el)
		}
		if srv.Stats().Received != 1 {
			t.Errorf("Stats().Received = %d, want 1", srv.Stats().Received)
		}
	})
	t.Run("client", func(t *testing.T) {
		p := newRawPeer(t, "127.0.0.1:0")
		cli := New(quietConfig(), nil)
		defer cli.Close()
		conn, err := cli.Connect(p.addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, _, ok := p.tryRecv(time.Second); !ok {
			t.Fatal("no HELLO")
		}
		to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), conn.LocalAddr().Port())
		wg := sendLater(t, to, 10*time.Millisecond)
		start := time.Now()
		if err := cli.Step(2 * time.Second); err != nil {
			t.Fatal(err)
		}
		el := time.Since(start)
		wg.Wait()
		if el > time.Second {
			t.Errorf("Step(2s) returned after %v although a datagram came after 10ms", el)
		}
	})
}

// Step waits no longer than the next timer: a PING due in 30ms ends a
// Step(2s) early.
func TestEndpointStepWakesForTimers(t *testing.T) {
	cfg := quietConfig()
	cfg.PingInterval = 30 * time.Millisecond
	srv, rec, step := newRawServer(t, "127.0.0.1:0", cfg)
	p := newRawPeer(t, "127.0.0.1:0")
	sc, _ := rawConnect(t, p, srv, rec, step, "HELLO")
	start := time.Now()
	if err := srv.Step(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("Step(2s) took %v with a PING due in 30ms", el)
	}
	b, from, ok := p.tryRecv(time.Second)
	if !ok || string(b) != "PING" || from != sc {
		t.Errorf("after the step: %q from %v, want PING from %v", b, from, sc)
	}
}

func TestEndpointCounters(t *testing.T) {
	cfg := quietConfig()
	cfg.RetryInterval = time.Minute
	d := newDuo(t, cfg, cfg)
	d.echo()
	d.connect()
	const n = 20
	for i := 0; i < n; i++ {
		if err := d.conn.Send([]byte(fmt.Sprint("m", i))); err != nil {
			t.Fatal(err)
		}
	}
	d.until("echoes", func() bool { return len(d.crec.messages()) == n })
	stepFor(d.step, 10*time.Millisecond)
	cs, ss := d.client.Stats(), d.server.Stats()
	// Client: HELLO, CONNECT, n data. Server: CONNECT <ip> <port>,
	// CONNECTED, n echoes.
	if cs.Sent != n+2 || cs.Received != n+2 || cs.Dropped != 0 || cs.SendErrors != 0 || cs.Clients != 1 {
		t.Errorf("client Stats %+v, want %d sent and received", cs, n+2)
	}
	if ss.Sent != n+2 || ss.Received != n+2 || ss.Dropped != 0 || ss.SendErrors != 0 || ss.Clients != 1 || ss.HalfOpen != 0 {
		t.Errorf("server Stats %+v, want %d sent and received, 1 client", ss, n+2)
	}
	if st := d.conn.Stats(); st.Sent != n+2 || st.Received != n+2 {
		t.Errorf("client conn Stats %+v, want %d sent and received", st, n+2)
	}
	if st := d.sconn.Stats(); st.Sent != n+1 || st.Received != n+1 {
		t.Errorf("server conn Stats %+v, want %d sent and received", st, n+1)
	}
	for i, m := range d.crec.messages() {
		if want := fmt.Sprint("echo:m", i); string(m) != want {
			t.Fatalf("echo %d = %q, want %q", i, m, want)
		}
	}
}

func TestEndpointHandlerPanic(t *testing.T) {
	cfg := quietConfig()
	d := newDuo(t, cfg, cfg)
	d.echo()
	d.connect()
	echo := d.server.handler
	d.server.handler = func(ev *Event) {
		echo(ev)
		if ev.Kind == EventNewMessage && string(ev.Data) == "boom" {
			panic("boom")
		}
	}
	for _, m := range []string{"a", "boom", "b", "c"} {
		if err := d.conn.Send([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(5 * time.Millisecond) // all four wait at the server
	stepRecover := func() (p any) {
		defer func() { p = recover() }()
		if err := d.server.Step(10 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		return nil
	}
	var panicked any
	for i := 0; i < 100 && panicked == nil; i++ {
		panicked = stepRecover()
	}
	if panicked != "boom" {
		t.Fatalf("the handler's panic did not come out of Step: %v", panicked)
	}
	// The next Step hands out what was left, and the endpoint works on.
	d.until("the rest", func() bool { return len(d.srec.messages()) == 4 })
	if got := strs(d.srec.messages()); !slices.Equal(got, []string{"a", "boom", "b", "c"}) {
		t.Errorf("server messages %q", got)
	}
	d.until("echoes", func() bool { return len(d.crec.messages()) == 4 })
	if got := strs(d.crec.messages()); !slices.Equal(got, []string{"echo:a", "echo:boom", "echo:b", "echo:c"}) {
		t.Errorf("client messages %q", got)
	}
	if err := d.conn.Send([]byte("d")); err != nil {
		t.Fatal(err)
	}
	d.until("one more echo", func() bool { return len(d.crec.messages()) == 5 })
	if n := d.srec.count(EventNewMessage); n != 5 {
		t.Errorf("server saw %d messages, want 5 (none twice)", n)
	}
}

func TestEndpointStepInsideHandler(t *testing.T) {
	cfg := quietConfig()
	d := newDuo(t, cfg, cfg)
	var inner error
	called := false
	d.server.handler = func(ev *Event) {
		d.srec.handle(ev)
		if ev.Kind == EventNewClient {
			called = true
			inner = d.server.Step(0)
		}
	}
	d.connect()
	if !called {
		t.Fatal("handler not called")
	}
	if inner == nil {
		t.Error("Step inside a handler: no error")
	}
	// And the endpoint is fine.
	d.echo()
	d.conn.Send([]byte("x"))
	d.until("echo", func() bool { return len(d.crec.messages()) == 1 })
}

func TestEndpointCloseInsideHandler(t *testing.T) {
	cfg := quietConfig()
	d := newDuo(t, cfg, cfg)
	d.connect()
	d.server.handler = func(ev *Event) {
		d.srec.handle(ev)
		if ev.Kind == EventNewMessage && string(ev.Data) == "quit" {
			d.server.Close()
			if string(ev.Data) != "quit" {
				t.Errorf("event data changed under the handler: %q", ev.Data)
			}
		}
	}
	d.conn.Send([]byte("quit"))
	d.conn.Send([]byte("more"))
	time.Sleep(5 * time.Millisecond)
	deadline := time.Now().Add(waitLimit)
	for d.srec.count(EventClose) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no EventClose; server events %v", d.srec.kinds())
		}
		if err := d.server.Step(time.Millisecond); err != nil {
			t.Fatalf("Step that closed the endpoint: %v", err)
		}
	}
	if err := d.server.Step(0); err == nil {
		t.Error("Step after Close in a handler: no error")
	}
	for d.crec.count(EventClose) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("client never saw the close: %v", d.crec.kinds())
		}
		if err := d.client.Step(time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEndpointManyClients(t *testing.T) {
	const n = 50
	cfg := quietConfig()
	cfg.CloseLinger = 10 * time.Millisecond
	srv, srec, _ := newRawServer(t, "127.0.0.1:0", cfg)
	srv.handler = func(ev *Event) {
		srec.handle(ev)
		if ev.Kind == EventNewMessage {
			ev.Conn.Send(append([]byte("echo:"), ev.Data...))
		}
	}
	clients := make([]*Endpoint, n)
	recs := make([]*evRec, n)
	conns := make([]*Conn, n)
	for i := range clients {
		recs[i] = &evRec{}
		clients[i] = New(cfg, recs[i].handle)
		c := clients[i]
		t.Cleanup(func() { c.Close() })
		var err error
		if conns[i], err = c.Connect(srv.Addr().String()); err != nil {
			t.Fatal(err)
		}
		// Sent before the handshake: queued, then sent on connect.
		if err := conns[i].Send([]byte("hi " + strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	stepAll := func() {
		if err := srv.Step(time.Millisecond); err != nil {
			t.Fatal(err)
		}
		for _, c := range clients {
			if err := c.Step(0); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, stepAll, "50 echoes", func() bool {
		for _, r := range recs {
			if len(r.messages()) == 0 {
				return false
			}
		}
		return true
	})
	for i, r := range recs {
		if got := strs(r.messages()); !slices.Equal(got, []string{"echo:hi " + strconv.Itoa(i)}) {
			t.Errorf("client %d got %q", i, got)
		}
	}
	if st := srv.Stats(); st.Clients != n || len(srv.Conns()) != n {
		t.Errorf("server has %d clients (%d conns), want %d", st.Clients, len(srv.Conns()), n)
	}
	if c := srec.count(EventNewClient); c != n {
		t.Errorf("%d EventNewClient, want %d", c, n)
	}
}

// The client alone runs on a manual clock: the server is silent while
// the test moves the client's time on.
func TestEndpointStallAndRecovery(t *testing.T) {
	clock := &ManualClock{}
	ccfg := Config{Clock: clock, CloseLinger: 10 * time.Millisecond}
	d := newDuo(t, quietConfig(), ccfg)
	d.echo()
	d.connect()
	stepClient := func() {
		if err := d.client.Step(time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(3*time.Second - time.Millisecond)
	stepFor(stepClient, 5*time.Millisecond)
	if d.crec.count(EventStalled) != 0 {
		t.Fatal("stalled before the stall timeout")
	}
	clock.Advance(time.Millisecond)
	waitFor(t, stepClient, "EventStalled", func() bool { return d.crec.count(EventStalled) == 1 })
	if !d.conn.Stalled() {
		t.Error("Stalled() false")
	}
	for _, m := range []string{"q1", "q2", "q3"} {
		if err := d.conn.Send([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if q := d.conn.Stats().Queued; q != 3 {
		t.Fatalf("Queued = %d, want 3", q)
	}
	// The client sends on unstall, in its handler: after the queue.
	d.client.handler = func(ev *Event) {
		d.crec.handle(ev)
		if ev.Kind == EventUnstalled {
			ev.Conn.Send([]byte("from onUnstalled"))
		}
	}
	// The server hears only the client's PINGs so far, and answers them.
	stepFor(func() {
		if err := d.server.Step(time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}, 10*time.Millisecond)
	if n := len(d.srec.messages()); n != 0 {
		t.Fatalf("server got %d messages while the client was stalled", n)
	}
	waitFor(t, stepClient, "EventUnstalled", func() bool { return d.crec.count(EventUnstalled) == 1 })
	if d.conn.Stalled() {
		t.Error("Stalled() true after EventUnstalled")
	}
	if err := d.conn.Send([]byte("later")); err != nil {
		t.Fatal(err)
	}
	d.until("the queue at the server", func() bool { return len(d.srec.messages()) == 5 })
	want := []string{"q1", "q2", "q3", "from onUnstalled", "later"}
	if got := strs(d.srec.messages()); !slices.Equal(got, want) {
		t.Errorf("server got %q, want %q", got, want)
	}
	if d.crec.count(EventStalled) != 1 || d.crec.count(EventDisconnect) != 0 {
		t.Errorf("client events %v", d.crec.kinds())
	}
}

func TestEndpointDisconnectTimeout(t *testing.T) {
	t.Run("client", func(t *testing.T) {
		clock := &ManualClock{}
		ccfg := Config{Clock: clock, CloseLinger: 10 * time.Millisecond}
		d := newDuo(t, quietConfig(), ccfg)
		d.connect()
		fds := countFDs(t)
		d.conn.Send([]byte("never1")) // sent, unanswered
		stepClient := func() {
			if err := d.client.Step(0); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 9; i++ {
			clock.Advance(time.Second)
			stepFor(stepClient, time.Millisecond)
			if i == 4 {
				d.conn.Send([]byte("queued1"))
				d.conn.Send([]byte("queued2"))
			}
		}
		if d.crec.count(EventStalled) != 1 || d.crec.count(EventDisconnect) != 0 {
			t.Fatalf("after 9 s: client events %v", d.crec.kinds())
		}
		clock.Advance(time.Second)
		waitFor(t, stepClient, "EventDisconnect", func() bool { return d.crec.count(EventDisconnect) == 1 })
		ev, _ := d.crec.last(EventDisconnect)
		if ev.Conn != d.conn || ev.Unsent != 2 {
			t.Errorf("EventDisconnect Conn %v Unsent %d, want 2", ev.Conn, ev.Unsent)
		}
		if d.conn.State() != StateClosed || len(d.client.Conns()) != 0 {
			t.Errorf("state %v conns %d", d.conn.State(), len(d.client.Conns()))
		}
		if n := countFDs(t); n != fds-1 {
			t.Errorf("%d file descriptors after the disconnect, want %d (socket given back)", n, fds-1)
		}
		if err := d.conn.Send([]byte("x")); !errors.Is(err, ErrClosed) {
			t.Errorf("Send after disconnect: %v", err)
		}
	})
	t.Run("server", func(t *testing.T) {
		clock := &ManualClock{}
		scfg := Config{Clock: clock, CloseLinger: 10 * time.Millisecond}
		d := newDuo(t, scfg, quietConfig())
		d.connect()
		fds := countFDs(t)
		stepServer := func() {
			if err := d.server.Step(0); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 10; i++ {
			clock.Advance(time.Second)
			stepFor(stepServer, time.Millisecond)
		}
		waitFor(t, stepServer, "EventDisconnect", func() bool { return d.srec.count(EventDisconnect) == 1 })
		if got := d.srec.kinds(); !slices.Equal(got, []EventKind{EventNewClient, EventConnect, EventStalled, EventDisconnect}) {
			t.Errorf("server events %v", got)
		}
		if st := d.server.Stats(); st.Clients != 0 || st.HalfOpen != 0 {
			t.Errorf("server Stats %+v after the disconnect", st)
		}
		if n := countFDs(t); n != fds-1 {
			t.Errorf("%d file descriptors after the disconnect, want %d", n, fds-1)
		}
		// The client's data goes nowhere now.
		d.conn.Send([]byte("anyone?"))
		stepFor(stepServer, 10*time.Millisecond)
		if n := len(d.srec.messages()); n != 0 {
			t.Errorf("server delivered %d messages after the disconnect", n)
		}
	})
}

// A client that connects again drops its connection (CLOSE to the
// server, EventClose) and makes a new one.
func TestEndpointReconnect(t *testing.T) {
	cfg := quietConfig()
	d := newDuo(t, cfg, cfg)
	d.connect()
	old := d.conn
	c2, err := d.client.Connect(d.server.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if c2 == old || old.State() != StateClosed || d.client.Client() != c2 {
		t.Fatalf("old state %v, Client() %v", old.State(), d.client.Client())
	}
	d.until("the new connection", func() bool {
		return d.crec.count(EventConnect) == 2 && d.srec.count(EventConnect) == 2 && d.srec.count(EventClose) == 1
	})
	if ev, _ := d.crec.last(EventClose); d.crec.count(EventClose) != 1 || ev.Conn != old {
		t.Errorf("client events %v: want one EventClose for the old connection", d.crec.kinds())
	}
	if ev, _ := d.srec.last(EventClose); ev.Conn != d.sconn {
		t.Errorf("server closed %v, want the old connection %v", ev.Conn, d.sconn)
	}
	if st := d.server.Stats(); st.Clients != 1 {
		t.Errorf("server has %d clients", st.Clients)
	}
}

// The usual script: reconnect from onClose / onDisconnect, that is from
// inside a handler.
func TestEndpointConnectInsideHandler(t *testing.T) {
	cfg := quietConfig()
	d := newDuo(t, cfg, cfg)
	d.connect()
	d.client.handler = func(ev *Event) {
		d.crec.handle(ev)
		if ev.Kind == EventClose && d.crec.count(EventClose) == 1 {
			if _, err := d.client.Connect(d.server.Addr().String()); err != nil {
				t.Errorf("Connect in a handler: %v", err)
			}
		}
	}
	d.sconn.Close()
	d.until("the new connection", func() bool { return d.crec.count(EventConnect) == 2 })
	d.echo()
	if err := d.client.Client().Send([]byte("again")); err != nil {
		t.Fatal(err)
	}
	d.until("echo", func() bool { return len(d.crec.messages()) == 1 })
}

// Event.Data is valid until the handler returns, also when the handler
// closes the endpoint: Close must not give the receive buffers back (to
// be filled by another endpoint) under the running handler.
func TestEndpointCloseInsideHandlerKeepsEventData(t *testing.T) {
	other := New(quietConfig(), nil)
	if err := other.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	q := newRawPeer(t, "127.0.0.1:0")
	// sync.Pool under the race detector drops a quarter of what it is
	// given, so try a few times.
	for attempt := 0; attempt < 8 && !t.Failed(); attempt++ {
		cfg := quietConfig()
		cfg.CloseLinger = time.Millisecond
		srv, rec, step := newRawServer(t, "127.0.0.1:0", cfg)
		p := newRawPeer(t, "127.0.0.1:0")
		sc, _ := rawConnect(t, p, srv, rec, step, "HELLO")
		msg := bytes.Repeat([]byte("m"), 100)
		done := false
		srv.handler = func(ev *Event) {
			if ev.Kind != EventNewMessage {
				return
			}
			done = true
			saved := append([]byte(nil), ev.Data...)
			srv.Close()
			// Another endpoint steps, as a second instance of a script
			// may: it reads a datagram into a receive batch.
			q.send(other.Addr(), bytes.Repeat([]byte("X"), 100))
			time.Sleep(time.Millisecond)
			if err := other.Step(0); err != nil {
				t.Error(err)
			}
			if !bytes.Equal(ev.Data, saved) {
				t.Errorf("ev.Data changed under the handler after Close: %q..., was %q...", ev.Data[:10], saved[:10])
			}
		}
		p.send(sc, msg)
		waitFor(t, func() { srv.Step(time.Millisecond) }, "the message", func() bool { return done })
	}
}

// New timings apply to open connections at once.
func TestEndpointSetConfigAppliesNow(t *testing.T) {
	srv, rec, step := newRawServer(t, "127.0.0.1:0", quietConfig())
	p := newRawPeer(t, "127.0.0.1:0")
	sc, _ := rawConnect(t, p, srv, rec, step, "HELLO")
	cfg := srv.Config()
	if cfg.PingInterval != time.Minute || cfg.RetryInterval != 500*time.Millisecond || cfg.QueueLimit != 1024 {
		t.Errorf("Config() = %+v: settings or defaults missing", cfg)
	}
	cfg.PingInterval = 20 * time.Millisecond
	srv.SetConfig(cfg)
	start := time.Now()
	p.expect(step, sc, "PING")
	if el := time.Since(start); el > time.Second {
		t.Errorf("PING %v after the ping interval became 20ms", el)
	}
}

func TestEndpointDebugOutput(t *testing.T) {
	var sbuf, cbuf strings.Builder
	scfg, ccfg := quietConfig(), quietConfig()
	scfg.Debug, ccfg.Debug = &sbuf, &cbuf
	d := newDuo(t, scfg, ccfg)
	d.connect()
	d.conn.Send([]byte("hello\x00there"))
	d.until("message", func() bool { return len(d.srec.messages()) == 1 })
	for _, want := range []string{"send", "HELLO", "CONNECT", "connected"} {
		if !strings.Contains(cbuf.String(), want) {
			t.Errorf("client debug output lacks %q:\n%s", want, cbuf.String())
		}
	}
	for _, want := range []string{"recv", "HELLO", "CONNECTED", "hello\\x00there", "connected"} {
		if !strings.Contains(sbuf.String(), want) {
			t.Errorf("server debug output lacks %q:\n%s", want, sbuf.String())
		}
	}
	for _, line := range strings.Split(strings.TrimSuffix(sbuf.String(), "\n"), "\n") {
		if !strings.HasPrefix(line, "udpipe: ") {
			t.Errorf("debug line %q", line)
		}
	}
	s := d.sconn.String()
	if !strings.Contains(s, d.sconn.LocalAddr().String()) || !strings.Contains(s, d.sconn.PeerAddr().String()) || !strings.Contains(s, "connected") {
		t.Errorf("String() = %q", s)
	}
}

func TestEndpointConnectErrors(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "0.0.0.0:1234", "[::]:1234", "nonsense", "127.0.0.1:70000"} {
		c := New(Config{}, nil)
		if _, err := c.Connect(addr); err == nil {
			t.Errorf("Connect(%q): no error", addr)
		}
		c.Close()
	}
	srv := New(Config{}, nil)
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, err := srv.Connect("127.0.0.1:1234"); err == nil {
		t.Error("Connect on a server: no error")
	}
}

// Connect resolves host names, preferring IPv4 as LuaSocket did.
func TestEndpointConnectByName(t *testing.T) {
	// Only from /etc/hosts: the tests send nothing off this machine.
	hosts, err := os.ReadFile("/etc/hosts")
	if err != nil || !regexp.MustCompile(`(?m)^\s*127\.0\.0\.1\s.*\blocalhost\b`).Match(hosts) {
		t.Skip("localhost is not in /etc/hosts")
	}
	S := newRawPeer(t, "127.0.0.1:0")
	cli := New(quietConfig(), nil)
	defer cli.Close()
	if _, err := cli.Connect("localhost:" + strconv.Itoa(int(S.addr().Port()))); err != nil {
		t.Skipf("localhost does not resolve here: %v", err)
	}
	b, from, ok := S.tryRecv(time.Second)
	if !ok || Parse(b).Kind != KindHello || !from.Addr().Is4() {
		t.Fatalf("S got %q from %v (ok %v), want HELLO over IPv4", b, from, ok)
	}
}
