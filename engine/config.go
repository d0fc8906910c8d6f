package engine

import (
	"io"
	"time"
)

// Config holds the settings of an Endpoint. The zero value of a field means
// its default, given next to it; DefaultConfig returns them all filled in.
type Config struct {
	// Token is the shared secret of the handshake, compared exactly.
	// Default: the empty string.
	Token string

	// RetryInterval is how often HELLO, CONNECT and CLOSE are re-sent
	// while unanswered. Default 0.5 s.
	RetryInterval time.Duration
	// ConnectTimeout ends a connection attempt that is not answered (client)
	// and gives back a half-open data socket that sees no CONNECT (server).
	// Default 5 s.
	ConnectTimeout time.Duration
	// CloseRetries is how many times CLOSE is re-sent before the closer
	// gives up waiting for CLOSED. Default 3.
	CloseRetries int
	// CloseLinger is how long Close (of the whole endpoint) waits for the
	// peers' CLOSED, re-sending CLOSE meanwhile. Default 0.2 s.
	CloseLinger time.Duration

	// PingInterval: a side that has heard nothing for this long sends PING.
	// Default 1 s.
	PingInterval time.Duration
	// StallTimeout: nothing heard for this long marks the connection
	// stalled. Default 3 s.
	StallTimeout time.Duration
	// DisconnectTimeout: nothing heard for this long ends the connection.
	// Default 10 s.
	DisconnectTimeout time.Duration

	// QueueLimit bounds the messages held for one connection while it is
	// stalled or still connecting; Send refuses more. Default 1024.
	QueueLimit int
	// MaxClients bounds the connected clients of a server; further HELLOs
	// get "GO AWAY!". Default 0: no limit.
	MaxClients int
	// MaxHalfOpen bounds the data sockets that were offered in answer to a
	// HELLO but not yet claimed by CONNECT. Default 256.
	MaxHalfOpen int
	// HalfOpenGrace is how long a half-open socket is safe from being
	// given back to make room for a new HELLO: time for a real client to
	// claim it. Default 0.1 s.
	HalfOpenGrace time.Duration

	// HelloRate bounds the replies to HELLO (CONNECT <ip> <port>, GO AWAY!)
	// that one source IP gets per second, so that forged HELLOs cannot
	// make the server reflect traffic at a victim. Default 20; negative:
	// no limit. HelloBurst is how many may go at once. Default 40.
	HelloRate  float64
	HelloBurst int
	// LimitLoopback applies HelloRate to loopback sources too. They are
	// exempt by default: a loopback source cannot be forged from outside
	// the machine, and local tests connect many clients from one address.
	LimitLoopback bool

	// SpinWait is how long Step keeps looking for datagrams, without
	// sleeping, before it waits for them, when the step before took some
	// in. While traffic flows this saves a sleep and a wake-up per round
	// trip; when it stops, Step sleeps again after SpinWait. Default
	// 50 µs; negative: never.
	SpinWait time.Duration

	// Clock runs the timers. Default SystemClock.
	Clock Clock
	// Debug, when not nil, receives one line for every datagram sent and
	// received and every change of state.
	Debug io.Writer
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{}.withDefaults()
}

// withDefaults returns c with each zero field set to its default.
func (c Config) withDefaults() Config {
	setDuration := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	setDuration(&c.RetryInterval, 500*time.Millisecond)
	setDuration(&c.ConnectTimeout, 5*time.Second)
	setDuration(&c.CloseLinger, 200*time.Millisecond)
	setDuration(&c.HalfOpenGrace, 100*time.Millisecond)
	if c.SpinWait == 0 {
		c.SpinWait = 50 * time.Microsecond
	}
	setDuration(&c.PingInterval, time.Second)
	setDuration(&c.StallTimeout, 3*time.Second)
	setDuration(&c.DisconnectTimeout, 10*time.Second)
	if c.CloseRetries <= 0 {
		c.CloseRetries = 3
	}
	if c.QueueLimit <= 0 {
		c.QueueLimit = 1024
	}
	if c.MaxHalfOpen <= 0 {
		c.MaxHalfOpen = 256
	}
	if c.HelloRate == 0 {
		c.HelloRate = 20
	}
	if c.HelloBurst <= 0 {
		c.HelloBurst = 40
	}
	if c.MaxClients < 0 {
		c.MaxClients = 0
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	return c
}
