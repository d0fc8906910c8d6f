package engine

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// Reliability on a bad network, made by the conditioner (SetSimulation,
// Blackout) between real loopback sockets: handshakes under loss, a
// conversation under loss, and an outage longer than the stall timeout.
// Each test has a manual-clock version (protocol timings as in SPEC.md,
// run without waiting) and a real-clock version with scaled timings.

// relRec records the events of one endpoint with the time they were
// handed out (on the endpoint's clock).
type relRec struct {
	clock Clock
	evs   []relEvent
}

type relEvent struct {
	kind EventKind
	data string
	at   time.Time
	conn *Conn
}

func (r *relRec) handle(ev *Event) {
	r.evs = append(r.evs, relEvent{kind: ev.Kind, data: string(ev.Data), at: r.clock.Now(), conn: ev.Conn})
}

func (r *relRec) count(k EventKind) int {
	n := 0
	for _, e := range r.evs {
		if e.kind == k {
			n++
		}
	}
	return n
}

func (r *relRec) first(k EventKind) (relEvent, bool) {
	for _, e := range r.evs {
		if e.kind == k {
			return e, true
		}
	}
	return relEvent{}, false
}

func (r *relRec) messages() []string {
	var ms []string
	for _, e := range r.evs {
		if e.kind == EventNewMessage {
			ms = append(ms, e.data)
		}
	}
	return ms
}

func (r *relRec) kinds() []EventKind {
	var ks []EventKind
	for _, e := range r.evs {
		ks = append(ks, e.kind)
	}
	return ks
}

// relTraffic sums what the endpoints moved, so that a caller can tell
// when a round of stepping changed nothing.
func relTraffic(eps ...*Endpoint) uint64 {
	var n uint64
	for _, ep := range eps {
		st := ep.Stats()
		n += st.Sent + st.Received + st.SimLost + st.Dropped
	}
	return n
}

// relSettle steps the server and the clients with Step(0) until a whole
// pass moves no datagram, so that everything sent at this instant of a
// manual clock is handled at this instant. The server is stepped every 50
// clients, so that its socket buffer never overflows.
func relSettle(t *testing.T, srv *Endpoint, clients []*Endpoint) {
	t.Helper()
	all := append([]*Endpoint{srv}, clients...)
	for pass := 0; pass < 20; pass++ {
		before := relTraffic(all...)
		relStep(t, srv)
		for i, c := range clients {
			relStep(t, c)
			if i%50 == 49 {
				relStep(t, srv)
			}
		}
		relStep(t, srv)
		if relTraffic(all...) == before {
			return
		}
	}
}

func relStep(t *testing.T, ep *Endpoint) {
	t.Helper()
	if err := ep.Step(0); err != nil {
		t.Fatalf("Step: %v", err)
	}
}

// relFDs counts the file descriptors of the process pid ("self" for this
// one).
func relFDs(t *testing.T, pid string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		t.Fatalf("cannot count file descriptors: %v", err)
	}
	return len(ents)
}

// 1000 clients, each behind a conditioner that loses 20% of what it sends
// and 20% of what it receives, handshake with one server; the manual clock
// runs 5 s (the connect timeout). SPEC.md §1: HELLO and CONNECT are re-sent
// every 0.5 s until answered.
func TestReliabilityHandshakesUnderLoss(t *testing.T) {
	const n = 1000
	clock := &ManualClock{}
	srv := New(Config{Clock: clock, MaxHalfOpen: 2000}, nil)
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	clients := make([]*Endpoint, n)
	t.Cleanup(func() { CloseAll(append(clients, srv)...) })
	connectedAt := make([]time.Duration, n)
	disconnected := make([]bool, n)
	start := clock.Now()
	for i := range clients {
		ep := New(Config{Clock: clock, CloseLinger: time.Millisecond}, func(ev *Event) {
			switch ev.Kind {
			case EventConnect:
				if connectedAt[i] != 0 {
					t.Errorf("client %d: a second EventConnect", i)
				}
				connectedAt[i] = clock.Now().Sub(start) + time.Nanosecond
			case EventDisconnect:
				disconnected[i] = true
			}
		})
		ep.SetSimulation(&Simulation{Loss: 0.2, Seed: uint64(i + 1)})
		clients[i] = ep
		if _, err := ep.Connect(srv.Addr().String()); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			relStep(t, srv) // take in the HELLOs before the socket buffer fills
		}
	}
	relSettle(t, srv, clients)
	const round = 20 * time.Millisecond
	timeout := srv.Config().ConnectTimeout
	for clock.Now().Sub(start) < timeout {
		clock.Advance(round)
		relSettle(t, srv, clients)
	}
	ok, failed := 0, 0
	var lost uint64
	var latest time.Duration
	for i, c := range clients {
		lost += c.Stats().SimLost
		if connectedAt[i] != 0 {
			ok++
			latest = max(latest, connectedAt[i])
			if st := c.Client().State(); st != StateConnected {
				t.Errorf("client %d: EventConnect, but now %v", i, st)
			}
		} else {
			failed++
			if !disconnected[i] {
				t.Errorf("client %d: neither connected nor disconnected after the connect timeout", i)
			}
		}
	}
	st := srv.Stats()
	t.Logf("manual clock, 20%% loss each way: %d of %d handshakes completed within %v (slowest %v); %d gave up; the conditioner lost %d datagrams; server: %d clients, %d half-open",
		ok, n, timeout, latest.Truncate(time.Millisecond), failed, lost, st.Clients, st.HalfOpen)
	if ok < 999 {
		t.Errorf("only %d of %d handshakes completed within the connect timeout under 20%% loss, want at least 999", ok, n)
	}
	if st.Clients != ok {
		t.Errorf("server counts %d clients, %d clients connected", st.Clients, ok)
	}
	if lost == 0 {
		t.Error("the conditioner lost nothing: the test did not test loss")
	}

	// Closing: the server says CLOSE to each (and lingers 0.2 s); each
	// client, stepped without the conditioner, answers and ends.
	srv.Close()
	for _, c := range clients {
		c.SetSimulation(nil)
		relStep(t, c)
		c.Close()
	}
}

// The same on the real clock, scaled down: 100 clients, retries every
// 100 ms, connect timeout 1 s (the same ten tries per step; at 50 ms and
// 500 ms a loaded machine under -race missed some).
func TestReliabilityHandshakesUnderLossRealClock(t *testing.T) {
	const n = 100
	cfg := Config{RetryInterval: 100 * time.Millisecond, ConnectTimeout: time.Second, CloseLinger: time.Millisecond}
	scfg := cfg
	scfg.MaxHalfOpen = 2000
	scfg.CloseLinger = 50 * time.Millisecond
	srv := New(scfg, nil)
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	clients := make([]*Endpoint, n)
	t.Cleanup(func() { CloseAll(append(clients, srv)...) })
	began := make([]time.Time, n)
	connectedAfter := make([]time.Duration, n)
	for i := range clients {
		ep := New(cfg, func(ev *Event) {
			if ev.Kind == EventConnect {
				connectedAfter[i] = time.Since(began[i])
			}
		})
		ep.SetSimulation(&Simulation{Loss: 0.2, Seed: uint64(i + 1)})
		clients[i] = ep
		began[i] = time.Now()
		if _, err := ep.Connect(srv.Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	for end := time.Now().Add(cfg.ConnectTimeout + 200*time.Millisecond); time.Now().Before(end); {
		if err := srv.Step(time.Millisecond); err != nil {
			t.Fatal(err)
		}
		for _, c := range clients {
			relStep(t, c)
		}
	}
	ok := 0
	var latest time.Duration
	for i := range clients {
		if connectedAfter[i] != 0 {
			ok++
			latest = max(latest, connectedAfter[i])
		}
	}
	t.Logf("real clock, 20%% loss each way: %d of %d handshakes completed within %v (slowest %v)",
		ok, n, cfg.ConnectTimeout, latest.Truncate(time.Millisecond))
	if ok < 99 {
		t.Errorf("only %d of %d handshakes completed under 20%% loss, want at least 99", ok, n)
	}
}

// convo is a ping-pong conversation: the client sends "m<i>", the server
// echoes it, and the client sends the next on the echo, or the same again
// when no echo came within resend (messages are lost).
type convo struct {
	t              *testing.T
	clock          Clock
	srv, cli       *Endpoint
	srec, crec     *relRec
	conn           *Conn
	next           int // the message awaiting its echo
	sentAt         time.Time
	resend         time.Duration
	resends, sends int
}

func newConvo(t *testing.T, clock Clock, scfg, ccfg Config, sim *Simulation) *convo {
	t.Helper()
	v := &convo{t: t, clock: clock, srec: &relRec{clock: clock}, crec: &relRec{clock: clock}}
	v.srv = New(scfg, func(ev *Event) {
		v.srec.handle(ev)
		if ev.Kind == EventNewMessage {
			if err := ev.Conn.Send(append([]byte("echo:"), ev.Data...)); err != nil {
				t.Errorf("server echo: %v", err)
			}
		}
	})
	if err := v.srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	v.cli = New(ccfg, v.crec.handle)
	if sim != nil {
		v.cli.SetSimulation(sim)
	}
	c, err := v.cli.Connect(v.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	v.conn = c
	t.Cleanup(func() {
		v.cli.SetSimulation(nil)
		v.cli.Close()
		v.srv.Close()
	})
	return v
}

// step steps the server, then the client, with wait as the timeout.
func (v *convo) step(wait time.Duration) {
	v.t.Helper()
	if err := v.srv.Step(wait); err != nil {
		v.t.Fatalf("server Step: %v", err)
	}
	if err := v.cli.Step(wait); err != nil {
		v.t.Fatalf("client Step: %v", err)
	}
}

// talk sends the next message when the echo of the last one came, or
// sends it again when it is overdue. It returns the echoes so far.
func (v *convo) talk() int {
	echoes := 0
	for _, m := range v.crec.messages() {
		if m == fmt.Sprint("echo:m", echoes) {
			echoes++
		}
	}
	now := v.clock.Now()
	switch {
	case v.conn.State() != StateConnected:
	case echoes == v.next:
		if err := v.conn.Send([]byte(fmt.Sprint("m", v.next))); err != nil {
			v.t.Fatalf("Send: %v", err)
		}
		v.next++
		v.sends++
		v.sentAt = now
	case now.Sub(v.sentAt) >= v.resend:
		if err := v.conn.Send([]byte(fmt.Sprint("m", v.next-1))); err != nil {
			v.t.Fatalf("Send: %v", err)
		}
		v.resends++
		v.sentAt = now
	}
	return echoes
}

func (v *convo) checkNoDisconnect(what string) {
	v.t.Helper()
	for side, r := range map[string]*relRec{"server": v.srec, "client": v.crec} {
		if n := r.count(EventDisconnect); n != 0 {
			v.t.Errorf("%s: %s saw %d EventDisconnect; events %v", what, side, n, r.kinds())
		}
		if n := r.count(EventClose); n != 0 {
			v.t.Errorf("%s: %s saw %d EventClose", what, side, n)
		}
	}
	if st := v.conn.State(); st != StateConnected {
		v.t.Errorf("%s: client's connection is %v", what, st)
	}
	if n := v.srv.Stats().Clients; n != 1 {
		v.t.Errorf("%s: server has %d clients", what, n)
	}
}

// A ping-pong conversation for 10 s of the manual clock under 20% loss
// each way, with the default timings (ping 1 s, stall 3 s, disconnect
// 10 s): never a disconnect.
func TestReliabilityConversationUnderLoss(t *testing.T) {
	clock := &ManualClock{}
	cfg := Config{Clock: clock}
	v := newConvo(t, clock, cfg, cfg, &Simulation{Loss: 0.2, Seed: 42})
	v.resend = 100 * time.Millisecond
	const round = 10 * time.Millisecond
	for i := 0; v.srec.count(EventConnect) == 0 || v.crec.count(EventConnect) == 0; i++ {
		if i > 500 {
			t.Fatalf("no handshake in 5 s under loss; client events %v", v.crec.kinds())
		}
		clock.Advance(round)
		v.step(0)
		v.step(0)
	}
	start := clock.Now()
	echoes := 0
	for clock.Now().Sub(start) < 10*time.Second {
		echoes = v.talk()
		v.step(0)
		v.step(0)
		clock.Advance(round)
	}
	v.step(0)
	st := v.cli.Stats()
	t.Logf("manual clock, 10 s under 20%% loss each way: %d round trips, %d messages re-sent, conditioner lost %d of the client's datagrams, %d stalls",
		echoes, v.resends, st.SimLost, v.crec.count(EventStalled))
	v.checkNoDisconnect("10 s conversation")
	// A lost message costs a resend interval (100 ms): about 150 round
	// trips are expected.
	if echoes < 60 {
		t.Errorf("only %d round trips in 10 s", echoes)
	}
	if st.SimLost == 0 {
		t.Error("the conditioner lost nothing")
	}
}

// The same on the real clock, scaled: ping 50 ms, stall 150 ms,
// disconnect 500 ms, for 1 s.
func TestReliabilityConversationUnderLossRealClock(t *testing.T) {
	cfg := Config{
		RetryInterval:     50 * time.Millisecond,
		PingInterval:      50 * time.Millisecond,
		StallTimeout:      150 * time.Millisecond,
		DisconnectTimeout: 500 * time.Millisecond,
		CloseLinger:       20 * time.Millisecond,
	}
	v := newConvo(t, SystemClock{}, cfg, cfg, &Simulation{Loss: 0.2, Seed: 7})
	v.resend = 20 * time.Millisecond
	deadline := time.Now().Add(3 * time.Second)
	for v.srec.count(EventConnect) == 0 || v.crec.count(EventConnect) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no handshake under loss; client events %v", v.crec.kinds())
		}
		v.step(time.Millisecond)
	}
	echoes := 0
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		echoes = v.talk()
		v.step(time.Millisecond)
	}
	st := v.cli.Stats()
	t.Logf("real clock, 1 s under 20%% loss each way: %d round trips, %d re-sent, conditioner lost %d, %d stalls",
		echoes, v.resends, st.SimLost, v.crec.count(EventStalled))
	v.checkNoDisconnect("1 s conversation")
	if echoes < 20 {
		t.Errorf("only %d round trips in 1 s", echoes)
	}
}

// blackoutRun connects a client, blacks it out for blackout, sends three
// messages once it is stalled and one from its EventUnstalled handler and
// one after, then checks SPEC.md §1: one stall, one unstall, the queue in
// order before what was sent later, no disconnect.
//
// mkUntil makes the function that steps v until cond holds or d has
// passed on the clock, and reports whether cond holds.
func blackoutRun(t *testing.T, clock Clock, cfg Config, blackout time.Duration,
	mkUntil func(v *convo) func(d time.Duration, cond func() bool) bool) {
	v := newConvo(t, clock, cfg, cfg, nil)
	until := mkUntil(v)
	cfg = v.cli.Config()
	limit := blackout + cfg.StallTimeout + cfg.DisconnectTimeout
	var unstallSendErr error
	v.cli.handler = func(ev *Event) {
		v.crec.handle(ev)
		if ev.Kind == EventUnstalled {
			unstallSendErr = ev.Conn.Send([]byte("from onUnstalled"))
		}
	}
	if !until(limit, func() bool { return v.srec.count(EventConnect) == 1 && v.crec.count(EventConnect) == 1 }) {
		t.Fatalf("no handshake; client events %v", v.crec.kinds())
	}
	if err := v.conn.Send([]byte("before")); err != nil {
		t.Fatal(err)
	}
	if !until(limit, func() bool { return len(v.crec.messages()) == 1 }) {
		t.Fatal("no echo before the blackout")
	}
	begin := clock.Now()
	v.cli.Blackout(blackout)
	if !until(limit, func() bool { return v.conn.Stalled() }) {
		t.Fatalf("client never stalled; events %v", v.crec.kinds())
	}
	stalledAt := clock.Now().Sub(begin)
	queued := []string{"q1", "q2", "q3"}
	for _, m := range queued {
		if err := v.conn.Send([]byte(m)); err != nil {
			t.Fatalf("Send(%q) while stalled: %v", m, err)
		}
	}
	if q := v.conn.Stats().Queued; q != 3 {
		t.Errorf("Queued = %d while stalled, want 3", q)
	}
	if !until(limit, func() bool { return v.crec.count(EventUnstalled) > 0 }) {
		t.Fatalf("client never unstalled; events %v", v.crec.kinds())
	}
	unstalledAt := clock.Now().Sub(begin)
	if err := v.conn.Send([]byte("later")); err != nil {
		t.Fatal(err)
	}
	want := []string{"before", "q1", "q2", "q3", "from onUnstalled", "later"}
	if !until(limit, func() bool { return len(v.srec.messages()) >= len(want) && len(v.crec.messages()) >= len(want) }) {
		t.Errorf("server got %q, client got %q", v.srec.messages(), v.crec.messages())
	}
	// Let it run a little more: nothing else may happen.
	until(2*cfg.StallTimeout, func() bool { return false })
	if unstallSendErr != nil {
		t.Errorf("Send in the EventUnstalled handler: %v", unstallSendErr)
	}
	if got := v.srec.messages(); !slices.Equal(got, want) {
		t.Errorf("server got %q, want %q", got, want)
	}
	var wantEcho []string
	for _, m := range want {
		wantEcho = append(wantEcho, "echo:"+m)
	}
	if got := v.crec.messages(); !slices.Equal(got, wantEcho) {
		t.Errorf("client got %q, want %q", got, wantEcho)
	}
	// The queue reached the server only after the blackout.
	for _, e := range v.srec.evs {
		if e.kind == EventNewMessage && strings.HasPrefix(e.data, "q") && e.at.Sub(begin) < blackout {
			t.Errorf("%q reached the server %v into a blackout of %v", e.data, e.at.Sub(begin), blackout)
		}
	}
	for side, r := range map[string]*relRec{"client": v.crec, "server": v.srec} {
		if s, u := r.count(EventStalled), r.count(EventUnstalled); s != 1 || u != 1 {
			t.Errorf("%s: %d EventStalled and %d EventUnstalled, want 1 and 1; events %v", side, s, u, r.kinds())
		}
	}
	v.checkNoDisconnect("blackout")
	if q := v.conn.Stats().Queued; q != 0 {
		t.Errorf("Queued = %d after recovery", q)
	}
	t.Logf("blackout %v (stall %v, disconnect %v): client stalled at %v, unstalled at %v; server got %q; client lost %d datagrams to the blackout",
		blackout, cfg.StallTimeout, cfg.DisconnectTimeout, stalledAt.Truncate(time.Millisecond),
		unstalledAt.Truncate(time.Millisecond), v.srec.messages(), v.cli.Stats().SimLost)
}

// A blackout of 5 s, between the stall (3 s) and disconnect (10 s)
// timeouts, on the manual clock.
func TestReliabilityBlackout(t *testing.T) {
	clock := &ManualClock{}
	blackoutRun(t, clock, Config{Clock: clock}, 5*time.Second, func(v *convo) func(time.Duration, func() bool) bool {
		return func(d time.Duration, cond func() bool) bool {
			const round = 10 * time.Millisecond
			for end := clock.Now().Add(d); clock.Now().Before(end); {
				if cond() {
					return true
				}
				clock.Advance(round)
				v.step(0)
				v.step(0)
			}
			return cond()
		}
	})
}

// The same on the real clock: ping 50 ms, stall 150 ms, disconnect 1 s,
// blackout 400 ms.
func TestReliabilityBlackoutRealClock(t *testing.T) {
	cfg := Config{
		PingInterval:      50 * time.Millisecond,
		StallTimeout:      150 * time.Millisecond,
		DisconnectTimeout: time.Second,
		CloseLinger:       20 * time.Millisecond,
	}
	blackoutRun(t, SystemClock{}, cfg, 400*time.Millisecond, func(v *convo) func(time.Duration, func() bool) bool {
		return func(d time.Duration, cond func() bool) bool {
			for end := time.Now().Add(d); time.Now().Before(end); {
				if cond() {
					return true
				}
				v.step(time.Millisecond)
			}
			return cond()
		}
	})
}
