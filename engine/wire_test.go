package engine

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name  string
		in    string
		kind  Kind
		token string         // KindHello
		addr  netip.AddrPort // KindConnectTo
	}{
		// The bare control words.
		{"CONNECT", "CONNECT", KindConnect, "", netip.AddrPort{}},
		{"CONNECTED", "CONNECTED", KindConnected, "", netip.AddrPort{}},
		{"GO AWAY!", "GO AWAY!", KindGoAway, "", netip.AddrPort{}},
		{"PING", "PING", KindPing, "", netip.AddrPort{}},
		{"PONG", "PONG", KindPong, "", netip.AddrPort{}},
		{"CLOSE", "CLOSE", KindClose, "", netip.AddrPort{}},
		{"CLOSED", "CLOSED", KindClosed, "", netip.AddrPort{}},

		// HELLO and its token.
		{"HELLO alone", "HELLO", KindHello, "", netip.AddrPort{}},
		{"HELLO empty token", "HELLO ", KindHello, "", netip.AddrPort{}},
		{"HELLO token", "HELLO tok", KindHello, "tok", netip.AddrPort{}},
		{"HELLO token with space", "HELLO tok en", KindHello, "tok en", netip.AddrPort{}},
		{"HELLO token leading space", "HELLO  x", KindHello, " x", netip.AddrPort{}},
		{"HELLO binary token", "HELLO \x00\xff", KindHello, "\x00\xff", netip.AddrPort{}},
		{"HELLOx", "HELLOx", KindData, "", netip.AddrPort{}},

		// CONNECT <ip> <port>.
		{"CONNECT ipv4", "CONNECT 127.0.0.1 40001", KindConnectTo, "", ap("127.0.0.1:40001")},
		{"CONNECT ipv6", "CONNECT ::1 40001", KindConnectTo, "", ap("[::1]:40001")},
		{"CONNECT ipv6 long", "CONNECT 2001:db8::1:2 65535", KindConnectTo, "", ap("[2001:db8::1:2]:65535")},
		{"CONNECT port 1", "CONNECT 10.0.0.1 1", KindConnectTo, "", ap("10.0.0.1:1")},
		{"CONNECT unspecified v4", "CONNECT 0.0.0.0 40001", KindConnectTo, "", ap("0.0.0.0:40001")},
		{"CONNECT unspecified v6", "CONNECT :: 40001", KindConnectTo, "", ap("[::]:40001")},
		{"CONNECT v4-mapped is unmapped", "CONNECT ::ffff:127.0.0.1 40001", KindConnectTo, "", ap("127.0.0.1:40001")},

		// Malformed CONNECT forms are data.
		{"CONNECT bad ip", "CONNECT 127.0.0.256 40001", KindData, "", netip.AddrPort{}},
		{"CONNECT name", "CONNECT localhost 40001", KindData, "", netip.AddrPort{}},
		{"CONNECT port 0", "CONNECT 127.0.0.1 0", KindData, "", netip.AddrPort{}},
		{"CONNECT port 70000", "CONNECT 127.0.0.1 70000", KindData, "", netip.AddrPort{}},
		{"CONNECT port 65536", "CONNECT 127.0.0.1 65536", KindData, "", netip.AddrPort{}},
		{"CONNECT negative port", "CONNECT 127.0.0.1 -1", KindData, "", netip.AddrPort{}},
		{"CONNECT plus port", "CONNECT 127.0.0.1 +1", KindData, "", netip.AddrPort{}},
		{"CONNECT hex port", "CONNECT 127.0.0.1 0x10", KindData, "", netip.AddrPort{}},
		{"CONNECT no space", "CONNECT 127.0.0.1:40001", KindData, "", netip.AddrPort{}},
		{"CONNECT no port", "CONNECT 127.0.0.1", KindData, "", netip.AddrPort{}},
		{"CONNECT empty port", "CONNECT 127.0.0.1 ", KindData, "", netip.AddrPort{}},
		{"CONNECT empty rest", "CONNECT ", KindData, "", netip.AddrPort{}},
		{"CONNECT two spaces before port", "CONNECT 127.0.0.1  40001", KindData, "", netip.AddrPort{}},
		{"CONNECT two spaces before ip", "CONNECT  127.0.0.1 40001", KindData, "", netip.AddrPort{}},
		{"CONNECT trailing newline", "CONNECT 127.0.0.1 40001\n", KindData, "", netip.AddrPort{}},
		{"CONNECT bracketed v6", "CONNECT [::1] 40001", KindData, "", netip.AddrPort{}},
		{"CONNECT zone", "CONNECT fe80::1%eth0 40001", KindData, "", netip.AddrPort{}},
		{"CONNECTx", "CONNECTx", KindData, "", netip.AddrPort{}},

		// Lower case and other near misses are data.
		{"lowercase ping", "ping", KindData, "", netip.AddrPort{}},
		{"lowercase pong", "pong", KindData, "", netip.AddrPort{}},
		{"lowercase hello", "hello tok", KindData, "", netip.AddrPort{}},
		{"lowercase connect", "connect", KindData, "", netip.AddrPort{}},
		{"lowercase connected", "connected", KindData, "", netip.AddrPort{}},
		{"lowercase close", "close", KindData, "", netip.AddrPort{}},
		{"lowercase closed", "closed", KindData, "", netip.AddrPort{}},
		{"lowercase go away", "go away!", KindData, "", netip.AddrPort{}},
		{"mixed case", "Ping", KindData, "", netip.AddrPort{}},
		{"GO AWAY without bang", "GO AWAY", KindData, "", netip.AddrPort{}},
		{"leading space", " PING", KindData, "", netip.AddrPort{}},
		{"trailing space", "PING ", KindData, "", netip.AddrPort{}},
		{"trailing NUL", "PING\x00", KindData, "", netip.AddrPort{}},
		{"prefix", "PIN", KindData, "", netip.AddrPort{}},

		// A trailing newline makes every word data.
		{"PING newline", "PING\n", KindData, "", netip.AddrPort{}},
		{"PONG newline", "PONG\n", KindData, "", netip.AddrPort{}},
		{"CONNECT newline", "CONNECT\n", KindData, "", netip.AddrPort{}},
		{"CONNECTED newline", "CONNECTED\n", KindData, "", netip.AddrPort{}},
		{"CLOSE crlf", "CLOSE\r\n", KindData, "", netip.AddrPort{}},
		{"CLOSED newline", "CLOSED\n", KindData, "", netip.AddrPort{}},
		{"GO AWAY newline", "GO AWAY!\n", KindData, "", netip.AddrPort{}},
		{"HELLO newline", "HELLO\n", KindData, "", netip.AddrPort{}},

		// Plain data.
		{"empty", "", KindData, "", netip.AddrPort{}},
		{"one byte", "x", KindData, "", netip.AddrPort{}},
		{"text", "HelloWorld", KindData, "", netip.AddrPort{}},
		{"binary", "\x00\x01\x02\xff\xfe", KindData, "", netip.AddrPort{}},
		{"NULs", "\x00\x00\x00\x00\x00\x00", KindData, "", netip.AddrPort{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Parse([]byte(tt.in))
			if d.Kind != tt.kind {
				t.Fatalf("Parse(%q).Kind = %v, want %v", tt.in, d.Kind, tt.kind)
			}
			switch tt.kind {
			case KindHello:
				if string(d.Token) != tt.token {
					t.Errorf("Parse(%q).Token = %q, want %q", tt.in, d.Token, tt.token)
				}
			case KindConnectTo:
				if d.Addr != tt.addr {
					t.Errorf("Parse(%q).Addr = %v, want %v", tt.in, d.Addr, tt.addr)
				}
			default:
				if d.Token != nil || d.Addr.IsValid() {
					t.Errorf("Parse(%q) = %+v: token or address set for %v", tt.in, d, d.Kind)
				}
			}
		})
	}
}

// The token of a HELLO aliases the datagram, as documented.
func TestParseHelloTokenAliases(t *testing.T) {
	b := []byte("HELLO abc")
	d := Parse(b)
	b[len(b)-1] = 'z'
	if string(d.Token) != "abz" {
		t.Fatalf("token %q does not alias the datagram", d.Token)
	}
}

func TestKindString(t *testing.T) {
	want := map[Kind]string{
		KindData: "data", KindHello: "HELLO", KindConnectTo: "CONNECT <ip> <port>",
		KindGoAway: "GO AWAY!", KindConnect: "CONNECT", KindConnected: "CONNECTED",
		KindPing: "PING", KindPong: "PONG", KindClose: "CLOSE", KindClosed: "CLOSED",
		Kind(200): "Kind(200)",
	}
	for k, s := range want {
		if k.String() != s {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(k), k.String(), s)
		}
	}
}

func TestAppendConnectToRoundTrip(t *testing.T) {
	for _, s := range []string{
		"127.0.0.1:40001", "0.0.0.0:1", "10.1.2.3:65535", "[::1]:40001",
		"[2001:db8::42]:5", "[::]:9", "[::ffff:192.0.2.1]:80",
	} {
		ap := netip.MustParseAddrPort(s)
		b := appendConnectTo([]byte("junk"), ap)
		if !bytes.HasPrefix(b, []byte("junk")) {
			t.Fatalf("appendConnectTo lost the prefix: %q", b)
		}
		b = b[len("junk"):]
		wantText := "CONNECT " + ap.Addr().Unmap().String() + " " + strconv.Itoa(int(ap.Port()))
		if string(b) != wantText {
			t.Errorf("appendConnectTo(%v) = %q, want %q", ap, b, wantText)
		}
		d := Parse(b)
		want := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if d.Kind != KindConnectTo || d.Addr != want {
			t.Errorf("Parse(%q) = %v %v, want %v %v", b, d.Kind, d.Addr, KindConnectTo, want)
		}
	}
}

func TestAppendHelloRoundTrip(t *testing.T) {
	for _, tok := range []string{"", "tok", "tok en", " ", "secret\x00bin", strings.Repeat("x", 200)} {
		b := appendHello(nil, tok)
		if want := "HELLO " + tok; string(b) != want {
			t.Errorf("appendHello(%q) = %q, want %q", tok, b, want)
		}
		d := Parse(b)
		if d.Kind != KindHello || string(d.Token) != tok {
			t.Errorf("Parse(appendHello(%q)) = %v %q", tok, d.Kind, d.Token)
		}
	}
}

// Parse is on the path of every datagram: data and the bare words must
// not allocate.
func TestParseAllocs(t *testing.T) {
	inputs := []string{
		"", "x", "HelloWorld", "\x00\x01\x02\x03\x04", strings.Repeat("d", 1400),
		"PING", "PONG", "CONNECT", "CONNECTED", "CLOSE", "CLOSED", "GO AWAY!",
		"HELLO", "HELLO tok", "ping", "PING\n", "CONNECTx",
	}
	for _, in := range inputs {
		b := []byte(in)
		var sink Kind
		allocs := testing.AllocsPerRun(200, func() { sink = Parse(b).Kind })
		_ = sink
		if allocs != 0 {
			t.Errorf("Parse(%.20q) allocates %v times", in, allocs)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "PING", "PONG", "CONNECT", "CONNECTED", "CLOSE", "CLOSED", "GO AWAY!",
		"HELLO", "HELLO ", "HELLO tok en", "CONNECT 127.0.0.1 40001", "CONNECT ::1 40001",
		"CONNECT ::ffff:10.0.0.1 7", "CONNECT 127.0.0.1 070000", "CONNECT fe80::1%lo 1",
		"\x00\xffdata",
	} {
		f.Add([]byte(s))
	}
	words := map[Kind]string{
		KindConnect: wordConnect, KindConnected: wordConnected, KindGoAway: wordGoAway,
		KindPing: wordPing, KindPong: wordPong, KindClose: wordClose, KindClosed: wordClosed,
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := string(b)
		d := Parse(b)
		if string(b) != in {
			t.Fatalf("Parse modified its input")
		}
		switch d.Kind {
		case KindData:
			if d.Token != nil || d.Addr.IsValid() {
				t.Fatalf("data %q with token or address: %+v", in, d)
			}
		case KindHello:
			if in != "HELLO" && !strings.HasPrefix(in, "HELLO ") {
				t.Fatalf("%q parsed as HELLO", in)
			}
			if d2 := Parse(appendHello(nil, string(d.Token))); d2.Kind != KindHello || !bytes.Equal(d2.Token, d.Token) {
				t.Fatalf("HELLO token %q does not round-trip: %v %q", d.Token, d2.Kind, d2.Token)
			}
		case KindConnectTo:
			if !strings.HasPrefix(in, "CONNECT ") {
				t.Fatalf("%q parsed as CONNECT <ip> <port>", in)
			}
			a := d.Addr
			if !a.IsValid() || a.Port() == 0 || a.Addr().Zone() != "" || a.Addr().Is4In6() {
				t.Fatalf("%q gave a bad address %v", in, a)
			}
			out := appendConnectTo(nil, a)
			d2 := Parse(out)
			if d2.Kind != KindConnectTo || d2.Addr != a {
				t.Fatalf("%q -> %v -> %q -> %v %v: no round trip", in, a, out, d2.Kind, d2.Addr)
			}
		default:
			w, ok := words[d.Kind]
			if !ok {
				t.Fatalf("%q: unknown kind %v", in, d.Kind)
			}
			if in != w {
				t.Fatalf("%q parsed as %v", in, d.Kind)
			}
		}
	})
}
