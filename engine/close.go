package engine

import (
	"time"
)

// This file closes endpoints: CLOSE to every peer, a short wait for
// their CLOSED, and every socket given back.

// Close ends every connection and gives back every socket. Open
// connections are sent CLOSE, and Close waits up to the close linger
// (real time, as it is about the real network) for their CLOSED, so
// that peers learn at once; each connection is reported with EventClose.
// The listening socket closes at once. After Close no socket remains.
func (e *Endpoint) Close() error {
	CloseAll(e)
	return nil
}

// CloseAll closes several endpoints as Close does, with their lingers at
// the same time rather than one after the other; endpoints of one process
// that are each other's peers answer each other's CLOSE meanwhile. A
// program that ends closes all its endpoints this way.
func CloseAll(eps ...*Endpoint) {
	var closing []*Endpoint
	for _, e := range eps {
		if e != nil && !e.closed {
			e.beginClose()
			closing = append(closing, e)
		}
	}
	lingerAll(closing)
	for _, e := range closing {
		e.endClose()
	}
	// The handlers run last, when every socket is already closed.
	for _, e := range closing {
		e.stepping = e.closeWasStepping
		e.dispatch()
	}
}

// beginClose closes the listening socket and sends CLOSE on every open
// connection. Connections that were not open end at once.
func (e *Endpoint) beginClose() {
	e.closed = true
	e.closeWasStepping = e.stepping
	e.stepping = true // batch the CLOSEs
	if e.listener != nil {
		e.removeSocket(e.listener)
		e.listener = nil
	}
	e.backlog, e.inBacklog = nil, nil
	for _, s := range e.socks {
		if s == nil || s.conn == nil {
			continue
		}
		c := s.conn
		if c.isServer && c.state == StateConnecting {
			c.finish(0, nil) // never reported as open; nobody to tell
			continue
		}
		c.Close()
	}
	e.flushSends()
}

// lingerAll waits for the CLOSED answers of the connections being closed,
// re-sending CLOSE a few times, until all came or the longest linger is
// over. Only closing connections are left, so what arrives can only end
// them: no event carries data from the receive batch.
func lingerAll(eps []*Endpoint) {
	var linger time.Duration
	for _, e := range eps {
		linger = max(linger, e.cfg.CloseLinger)
	}
	deadline := time.Now().Add(linger)
	nextResend := make([]time.Time, len(eps))
	for {
		busy := false
		for i, e := range eps {
			if !e.anyClosing() {
				continue
			}
			busy = true
			// One endpoint can block on its poller; several take turns.
			wait := time.Duration(0)
			if len(eps) == 1 {
				wait = min(time.Until(deadline), time.Until(nextResend[i]))
			}
			e.ready, _ = e.poll.wait(wait, e.ready[:0])
			if len(e.ready) > 0 {
				// A batch of its own: when Close is called from a handler,
				// that handler's event may point into e.rx.
				inUse := e.rx
				e.rx = nil
				e.readReady()
				e.releaseRecvBatch()
				e.rx = inUse
				continue
			}
			if now := time.Now(); !now.Before(nextResend[i]) {
				if !nextResend[i].IsZero() {
					e.resendClose()
				}
				nextResend[i] = now.Add(e.cfg.CloseLinger / time.Duration(e.cfg.CloseRetries+1))
			}
		}
		if !busy || !time.Now().Before(deadline) {
			return
		}
		if len(eps) > 1 {
			time.Sleep(time.Millisecond)
		}
	}
}

func (e *Endpoint) resendClose() {
	for _, s := range e.socks {
		if s != nil && s.conn != nil && s.conn.state == StateClosing {
			s.conn.transmitWord(wordClose)
		}
	}
	e.flushSends()
}

// endClose ends the connections still waiting for CLOSED and gives back
// what is left.
func (e *Endpoint) endClose() {
	for _, s := range e.socks {
		if s != nil && s.conn != nil {
			s.conn.finish(EventClose, nil)
		}
	}
	e.flushSends()
	e.poll.close()
	if !e.closeWasStepping {
		// Inside Step, the handler that called Close may still be reading
		// its event's data from the batch; endStep gives it back.
		e.releaseRecvBatch()
	}
}

func (e *Endpoint) anyClosing() bool {
	for _, s := range e.socks {
		if s != nil && s.conn != nil && s.conn.state == StateClosing {
			return true
		}
	}
	return false
}

// Closed reports whether Close was called.
func (e *Endpoint) Closed() bool { return e.closed }
