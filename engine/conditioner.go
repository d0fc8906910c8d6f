package engine

import (
	"math/rand/v2"
	"net/netip"
	"sort"
	"time"
)

// Simulation describes a bad network, for testing scripts against loss,
// delay and outages. An endpoint's conditioner applies it to the datagrams
// the endpoint sends and receives, as if the network did it. It is off
// unless SetSimulation turns it on, and then costs nothing.
type Simulation struct {
	Loss      float64       // chance that a datagram is lost, sent or received (0..1)
	Duplicate float64       // chance that a datagram sent arrives twice (0..1)
	Delay     time.Duration // added to every datagram sent
	Jitter    time.Duration // a random extra delay of up to Jitter (it reorders)
	Seed      uint64        // seed of the random choices; 0 picks one
}

// conditioner is the simulated network between an endpoint and the real
// one.
type conditioner struct {
	sim           Simulation
	rng           *rand.Rand
	blackoutUntil time.Time
	delayed       []delayedDatagram // by due time
}

type delayedDatagram struct {
	due  time.Time
	sock *udpSocket
	to   netip.AddrPort
	data []byte
}

func newConditioner(sim Simulation) *conditioner {
	seed := sim.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &conditioner{sim: sim, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (c *conditioner) blackedOut(now time.Time) bool {
	return now.Before(c.blackoutUntil)
}

// dropIncoming decides whether a received datagram is lost.
func (c *conditioner) dropIncoming(now time.Time) bool {
	return c.blackedOut(now) || c.chance(c.sim.Loss)
}

// outgoing decides what becomes of a datagram sent: how many copies go
// (0: lost) and after what delay.
func (c *conditioner) outgoing(now time.Time) (copies int, delay time.Duration) {
	if c.blackedOut(now) || c.chance(c.sim.Loss) {
		return 0, 0
	}
	copies = 1
	if c.chance(c.sim.Duplicate) {
		copies = 2
	}
	delay = c.sim.Delay
	if c.sim.Jitter > 0 {
		delay += time.Duration(c.rng.Int64N(int64(c.sim.Jitter) + 1))
	}
	return copies, delay
}

func (c *conditioner) chance(p float64) bool {
	return p > 0 && c.rng.Float64() < p
}

// hold keeps a copy of a datagram until due.
func (c *conditioner) hold(due time.Time, s *udpSocket, to netip.AddrPort, b []byte) {
	d := delayedDatagram{due: due, sock: s, to: to, data: append([]byte(nil), b...)}
	i := sort.Search(len(c.delayed), func(i int) bool { return c.delayed[i].due.After(due) })
	c.delayed = append(c.delayed, delayedDatagram{})
	copy(c.delayed[i+1:], c.delayed[i:])
	c.delayed[i] = d
}

// takeDue removes and returns the datagrams due by now, oldest first.
func (c *conditioner) takeDue(now time.Time) []delayedDatagram {
	n := sort.Search(len(c.delayed), func(i int) bool { return c.delayed[i].due.After(now) })
	if n == 0 {
		return nil
	}
	due := append([]delayedDatagram(nil), c.delayed[:n]...)
	c.delayed = append(c.delayed[:0], c.delayed[n:]...)
	return due
}

// next returns when the next held datagram is due.
func (c *conditioner) next() (time.Time, bool) {
	if len(c.delayed) == 0 {
		return time.Time{}, false
	}
	return c.delayed[0].due, true
}

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
