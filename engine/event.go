package engine

import (
	"net/netip"
	"strconv"
)

// EventKind says what happened. The names follow the callbacks of the
// original Lua library (onNewClient, onNewMessage, ...).
type EventKind uint8

// The events an Endpoint reports through its Handler.
const (
	// EventNewClient: a server accepted a HELLO. Data is the HELLO datagram,
	// Addr the client, Local the data socket offered to it. Conn is set,
	// but the connection is half-open until EventConnect.
	EventNewClient EventKind = iota + 1
	// EventNewMessage: a message arrived on Conn. Data is the message.
	EventNewMessage
	// EventConnect: server side, CONNECT reached the data socket; client
	// side, CONNECTED arrived. Addr is the peer.
	EventConnect
	// EventConnecting: a client got "CONNECT <ip> <port>"; Addr is where
	// the data socket is.
	EventConnecting
	// EventDisconnect: the connection timed out, or a connection attempt
	// failed. Unsent counts the queued messages that were never sent.
	EventDisconnect
	// EventClose: the connection was closed, by either side. Unsent counts
	// the queued messages that were never sent.
	EventClose
	// EventStalled: nothing was heard from the peer for the stall timeout.
	EventStalled
	// EventUnstalled: the peer was heard again after a stall; the queue is
	// sent right after this event.
	EventUnstalled
	// EventMaxClients: server side, a HELLO was refused because the server
	// is full (Data is the HELLO, Addr its sender); client side, the server
	// answered "GO AWAY!" (Data is that datagram, Addr the server).
	EventMaxClients
	// EventPing: a PING arrived on Conn (PONG was already sent).
	EventPing
	// EventPong: a PONG arrived on Conn; Conn.RTT is updated.
	EventPong
	// EventBadToken: server side, a HELLO with the wrong token was refused.
	// Data is the HELLO, Addr its sender.
	EventBadToken
)

var eventNames = [...]string{"", "NewClient", "NewMessage", "Connect", "Connecting",
	"Disconnect", "Close", "Stalled", "Unstalled", "MaxClients", "Ping", "Pong", "BadToken"}

// String names the event as its Lua callback does, without "on".
func (k EventKind) String() string {
	if int(k) < len(eventNames) && k != 0 {
		return eventNames[k]
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is one thing that happened on an Endpoint.
//
// Data aliases the endpoint's receive buffers: it is valid only until the
// Handler returns. Copy it to keep it.
type Event struct {
	Kind   EventKind
	Conn   *Conn          // the connection, when there is one
	Data   []byte         // the message or the handshake datagram
	Addr   netip.AddrPort // the remote address the event is about
	Local  netip.AddrPort // EventNewClient: the offered data socket
	Unsent int            // EventDisconnect, EventClose: queued messages never sent
}
