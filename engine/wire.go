package engine

import (
	"bytes"
	"net/netip"
	"strconv"
)

// The control words of the UDPIPE wire protocol v1. Each is one whole
// datagram of plain ASCII, with no newline.
const (
	wordHello     = "HELLO"
	wordConnect   = "CONNECT"
	wordConnected = "CONNECTED"
	wordGoAway    = "GO AWAY!"
	wordPing      = "PING"
	wordPong      = "PONG"
	wordClose     = "CLOSE"
	wordClosed    = "CLOSED"
)

// MaxDatagram is the largest payload one UDP datagram can carry over IPv4,
// and so the largest message Send accepts.
const MaxDatagram = 65507

// Kind says what a datagram means in the protocol.
type Kind uint8

// The kinds of datagram. Anything that is not exactly a control word is
// KindData.
const (
	KindData      Kind = iota // application data (any bytes, also empty)
	KindHello                 // "HELLO" or "HELLO <token>"
	KindConnectTo             // "CONNECT <ip> <port>": where the data socket is
	KindGoAway                // "GO AWAY!": the server refuses
	KindConnect               // "CONNECT"
	KindConnected             // "CONNECTED"
	KindPing                  // "PING"
	KindPong                  // "PONG"
	KindClose                 // "CLOSE"
	KindClosed                // "CLOSED"
)

var kindNames = [...]string{"data", "HELLO", "CONNECT <ip> <port>", "GO AWAY!",
	"CONNECT", "CONNECTED", "PING", "PONG", "CLOSE", "CLOSED"}

// String names the kind by its control word.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Datagram is a parsed datagram.
type Datagram struct {
	Kind  Kind
	Token []byte         // KindHello: the token (empty for "HELLO" alone); aliases the input
	Addr  netip.AddrPort // KindConnectTo: the announced data socket
}

// Parse tells what b means. It never fails: a datagram that is not exactly
// a control word is data. It allocates nothing for data and for the bare
// control words.
func Parse(b []byte) Datagram {
	// Every control word is at least 4 bytes long, and the bare ones are
	// matched whole; only HELLO and CONNECT carry arguments. So short
	// data costs one comparison and other data a few.
	if len(b) < 4 {
		return Datagram{Kind: KindData}
	}
	switch string(b) {
	case wordPing:
		return Datagram{Kind: KindPing}
	case wordPong:
		return Datagram{Kind: KindPong}
	case wordConnect:
		return Datagram{Kind: KindConnect}
	case wordConnected:
		return Datagram{Kind: KindConnected}
	case wordClose:
		return Datagram{Kind: KindClose}
	case wordClosed:
		return Datagram{Kind: KindClosed}
	case wordGoAway:
		return Datagram{Kind: KindGoAway}
	case wordHello:
		return Datagram{Kind: KindHello, Token: b[len(b):]}
	}
	if bytes.HasPrefix(b, []byte(wordHello+" ")) {
		return Datagram{Kind: KindHello, Token: b[len(wordHello)+1:]}
	}
	if bytes.HasPrefix(b, []byte(wordConnect+" ")) {
		if ap, ok := parseConnectTo(b[len(wordConnect)+1:]); ok {
			return Datagram{Kind: KindConnectTo, Addr: ap}
		}
	}
	return Datagram{Kind: KindData}
}

// parseConnectTo parses "<ip> <port>", splitting at the last space so that
// an IPv6 address works.
func parseConnectTo(b []byte) (netip.AddrPort, bool) {
	i := bytes.LastIndexByte(b, ' ')
	if i < 0 {
		return netip.AddrPort{}, false
	}
	ip, err := netip.ParseAddr(string(b[:i]))
	if err != nil || ip.Zone() != "" {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(string(b[i+1:]), 10, 16)
	if err != nil || port == 0 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), true
}

// appendHello appends "HELLO <token>" to dst.
func appendHello(dst []byte, token string) []byte {
	dst = append(dst, wordHello...)
	dst = append(dst, ' ')
	return append(dst, token...)
}

// appendConnectTo appends "CONNECT <ip> <port>" to dst.
func appendConnectTo(dst []byte, ap netip.AddrPort) []byte {
	dst = append(dst, wordConnect...)
	dst = append(dst, ' ')
	dst = ap.Addr().Unmap().AppendTo(dst)
	dst = append(dst, ' ')
	return strconv.AppendUint(dst, uint64(ap.Port()), 10)
}
