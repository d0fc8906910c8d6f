package engine

import (
	"fmt"
	"testing"
	"time"
)

// Answers sent from handlers leave every flushEvery datagrams, not only
// at the end of the step: while the handler of the 17th message of a
// batch runs, the answers to the first 16 have already reached the peer.
func TestSendsLeaveDuringTheStep(t *testing.T) {
	srv, rec, step := newRawServer(t, "127.0.0.1:0", quietConfig())
	p := newRawPeer(t, "127.0.0.1:0")
	sc, _ := rawConnect(t, p, srv, rec, step, "HELLO")
	const n = flushEvery + 1
	arrivedEarly := -1
	handled := 0
	srv.handler = func(ev *Event) {
		if ev.Kind != EventNewMessage {
			return
		}
		handled++
		if handled == n {
			// Still inside the step that read all n messages.
			if b, _, ok := p.tryRecv(200 * time.Millisecond); ok {
				fmt.Sscanf(string(b), "re:%d", &arrivedEarly)
			}
		}
		ev.Conn.Send(append([]byte("re:"), ev.Data...))
	}
	for i := 0; i < n; i++ {
		p.sends(sc, fmt.Sprint(i))
	}
	time.Sleep(20 * time.Millisecond) // all n wait in the socket: one step reads them
	waitFor(t, step, "all handled", func() bool { return handled == n })
	if arrivedEarly != 0 {
		t.Errorf("while the step was still handling message %d, the answer to message 0 had not left (got %d)", n, arrivedEarly)
	}
}

// A HELLO that finds the backlog full pushes out its oldest entry, which
// is counted as crowded out.
func TestBacklogFullCrowdsOutTheOldest(t *testing.T) {
	cfg := quietConfig()
	cfg.MaxHalfOpen = 1
	cfg.HalfOpenGrace = time.Hour
	srv, _, step := newRawServer(t, "127.0.0.1:0", cfg)
	S := srv.Addr()
	first := newRawPeer(t, "127.0.0.1:0")
	first.sends(S, "HELLO")
	first.recv(step)
	// backlogFactor*MaxHalfOpen fit in the backlog; one more pushes out
	// the oldest.
	for i := 0; i < backlogFactor*cfg.MaxHalfOpen+1; i++ {
		newRawPeer(t, "127.0.0.1:0").sends(S, "HELLO")
	}
	stepFor(step, 30*time.Millisecond)
	if st := srv.Stats(); st.Backlog != backlogFactor || st.Crowded != 1 || st.HalfOpen != 1 {
		t.Errorf("Backlog %d Crowded %d HalfOpen %d, want %d 1 1", st.Backlog, st.Crowded, st.HalfOpen, backlogFactor)
	}
}

// The conditioner: Duplicate sends every datagram twice; Delay holds
// datagrams on the endpoint's clock, and Jitter spreads them over up to
// Jitter more, in any order.
func TestConditionerDuplicateDelayJitter(t *testing.T) {
	clock := &ManualClock{}
	cfg := quietConfig()
	cfg.Clock = clock
	srv, rec, step := newRawServer(t, "127.0.0.1:0", cfg)
	p := newRawPeer(t, "127.0.0.1:0")
	_, conn := rawConnect(t, p, srv, rec, step, "HELLO")

	srv.SetSimulation(&Simulation{Duplicate: 1, Seed: 1})
	conn.Send([]byte("twice"))
	for i := 0; i < 2; i++ {
		if b, _, ok := p.tryRecv(waitLimit); !ok || string(b) != "twice" {
			t.Fatalf("copy %d: %q, %v", i, b, ok)
		}
	}
	if b, _, ok := p.tryRecv(20 * time.Millisecond); ok {
		t.Fatalf("a third copy: %q", b)
	}

	srv.SetSimulation(&Simulation{Delay: time.Second, Jitter: 500 * time.Millisecond, Seed: 2})
	const n = 20
	for i := 0; i < n; i++ {
		conn.Send([]byte(fmt.Sprint(i)))
	}
	clock.Advance(999 * time.Millisecond)
	step()
	if b, _, ok := p.tryRecv(20 * time.Millisecond); ok {
		t.Fatalf("%q arrived before the delay", b)
	}
	clock.Advance(501 * time.Millisecond)
	step()
	var order []string
	for i := 0; i < n; i++ {
		b, _, ok := p.tryRecv(waitLimit)
		if !ok {
			t.Fatalf("%d of %d arrived after delay+jitter", i, n)
		}
		order = append(order, string(b))
	}
	inOrder := true
	for i, m := range order {
		inOrder = inOrder && m == fmt.Sprint(i)
	}
	if inOrder {
		t.Errorf("20 datagrams with 0.5 s of jitter all arrived in order: %v", order)
	}
}
