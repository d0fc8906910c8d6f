// Package engine implements the UDPIPE protocol: a UDP server that hands
// each client a data socket of its own, and a client that connects to it,
// with handshake retries, a shared token, PING/PONG liveness, stall
// detection with an ordered send queue, and CLOSE/CLOSED.
//
// The package is in layers, each in its own files, from the protocol down
// to the system calls:
//
//   - wire.go: the datagrams of the protocol (parsing and the control words);
//   - conn.go: the state of one connection, a state machine with no I/O of
//     its own, driven by received datagrams and by a clock;
//   - endpoint.go, server.go and close.go: the sockets, the timers and the
//     events of an endpoint, the server's side of the handshake, and
//     closing;
//   - socket_*.go: the system calls underneath: on Linux batched reads and
//     writes (recvmmsg, sendmmsg, UDP GSO) and epoll (socket_linux.go);
//     on macOS and the BSDs one call per datagram and poll
//     (socket_bsd.go); elsewhere package net (socket_other.go);
//   - conditioner.go and ratelimit.go: the simulated bad network, and the
//     rate limit on answers to HELLO.
//
// An Endpoint is either a server (Listen) or a client (Connect). It does
// nothing by itself: the caller drives it with Step, which waits for
// datagrams up to a timeout, runs the timers, and hands every event
// (a new client, a message, a stall, ...) to the Handler. On Linux, macOS
// and the BSDs no goroutine is started: all work happens inside Step, on
// the caller's goroutine, which is what an embedded interpreter such as
// gopher-lua needs. (Elsewhere each socket has a goroutine that reads it;
// Close waits for them to end.)
//
// An Endpoint is not safe for concurrent use.
package engine
