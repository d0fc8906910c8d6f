package engine

import (
	"fmt"
	"testing"
	"time"
)

// pair is a server and a client endpoint on loopback, stepped together.
type pair struct {
	t              *testing.T
	server, client *Endpoint
	srec, crec     *evRec
	conn           *Conn
}

func newPair(t *testing.T, scfg, ccfg Config) *pair {
	t.Helper()
	p := &pair{t: t, srec: &evRec{}, crec: &evRec{}}
	p.server = New(scfg, p.srec.handle)
	if err := p.server.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	p.client = New(ccfg, p.crec.handle)
	c, err := p.client.Connect(p.server.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p.conn = c
	t.Cleanup(func() { p.client.Close(); p.server.Close() })
	return p
}

// stepUntil steps both sides until cond holds, failing after 2 s.
func (p *pair) stepUntil(what string, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out waiting for %s; server events %v, client events %v",
				what, p.srec.kinds(), p.crec.kinds())
		}
		if err := p.server.Step(time.Millisecond); err != nil {
			p.t.Fatal(err)
		}
		if err := p.client.Step(time.Millisecond); err != nil {
			p.t.Fatal(err)
		}
	}
}

func TestHandshakeAndEcho(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	var serverConn *Conn
	p.server.handler = func(ev *Event) {
		p.srec.handle(ev)
		if ev.Kind == EventNewMessage {
			serverConn = ev.Conn
			if err := ev.Conn.Send(append([]byte("echo:"), ev.Data...)); err != nil {
				t.Error(err)
			}
		}
	}
	p.stepUntil("connect", func() bool { return p.crec.has(EventConnect) && p.srec.has(EventConnect) })
	for i := 0; i < 100; i++ {
		if err := p.conn.Send([]byte(fmt.Sprint("m", i))); err != nil {
			t.Fatal(err)
		}
	}
	p.stepUntil("100 echoes", func() bool { return len(p.crec.messages()) == 100 })
	for i, m := range strs(p.crec.messages()) {
		if want := fmt.Sprint("echo:m", i); m != want {
			t.Fatalf("message %d = %q, want %q", i, m, want)
		}
	}
	if got := p.conn.PeerAddr(); got != serverConn.LocalAddr() {
		t.Errorf("client's peer %v, server's data socket %v", got, serverConn.LocalAddr())
	}
}

// CloseAll closes a server and its client in one process together: each
// answers the other's CLOSE, so neither waits out its linger, and both
// report EventClose.
func TestCloseAllTogether(t *testing.T) {
	p := newPair(t, Config{CloseLinger: 2 * time.Second}, Config{CloseLinger: 2 * time.Second})
	p.stepUntil("connect", func() bool { return p.crec.has(EventConnect) && p.srec.has(EventConnect) })
	start := time.Now()
	CloseAll(p.server, p.client)
	if took := time.Since(start); took > time.Second {
		t.Errorf("CloseAll took %v; the linger is 2s and the peers could answer each other", took)
	}
	if !p.srec.has(EventClose) || !p.crec.has(EventClose) {
		t.Errorf("server events %v, client events %v: want EventClose on both", p.srec.kinds(), p.crec.kinds())
	}
	if st := p.server.Stats(); st.Clients != 0 || st.HalfOpen != 0 {
		t.Errorf("server stats after CloseAll: %+v", st)
	}
}
