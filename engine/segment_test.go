//go:build linux && !udpipe_portable

package engine

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// Datagrams sent in one step, many of one size to one peer (which go out
// as one segmented send) mixed with others, reach a plain UDP peer as the
// same datagrams, byte for byte and in order; with segmentation off (as
// after a route refused it) too.
func TestSegmentedSendArrivesAsDatagrams(t *testing.T) {
	for _, segments := range []bool{true, false} {
		t.Run(fmt.Sprintf("segments=%v", segments), func(t *testing.T) {
			srv, rec, step := newRawServer(t, "127.0.0.1:0", quietConfig())
			p := newRawPeer(t, "127.0.0.1:0")
			sc, conn := rawConnect(t, p, srv, rec, step, "HELLO")
			conn.sock.noSegments = !segments

			// In one step: 70 of 100 bytes (more than one segmented send
			// takes), one of 37, 5 of 100 again, an empty one, 3 of 1300
			// (too big to join), and 10 of 100.
			var want [][]byte
			add := func(n, size int) {
				for i := 0; i < n; i++ {
					m := bytes.Repeat([]byte{byte(len(want))}, size)
					copy(m, fmt.Sprintf("#%d", len(want)))
					want = append(want, m)
				}
			}
			add(70, 100)
			add(1, 37)
			add(5, 100)
			add(1, 0)
			add(3, 1300)
			add(10, 100)
			srv.stepping = true // as inside a handler: the sends wait for the flush
			for _, m := range want {
				if err := conn.Send(m); err != nil {
					t.Fatal(err)
				}
			}
			srv.stepping = false
			srv.flushSends()

			for i, w := range want {
				b, from, ok := p.tryRecv(waitLimit)
				if !ok {
					t.Fatalf("datagram %d of %d never came", i, len(want))
				}
				if from != sc || !bytes.Equal(b, w) {
					t.Fatalf("datagram %d: %d bytes %q from %v, want %d bytes %q from %v",
						i, len(b), quoteShort(b), from, len(w), quoteShort(w), sc)
				}
			}
			if b, _, ok := p.tryRecv(20 * time.Millisecond); ok {
				t.Fatalf("an extra datagram: %q", quoteShort(b))
			}
			if st := srv.Stats(); st.SendErrors != 0 {
				t.Errorf("send errors: %d", st.SendErrors)
			}
			if segments && conn.sock.noSegments {
				t.Errorf("the kernel refused a segmented send on loopback (Linux 4.18+ takes them)")
			}
		})
	}
}

// pack joins runs of datagrams of one size for one address, up to the
// kernel's limits, and nothing else.
func TestPackJoinsRuns(t *testing.T) {
	s := &udpSocket{family: 2} // AF_INET
	a := netip.MustParseAddrPort("127.0.0.1:1000")
	b := netip.MustParseAddrPort("127.0.0.1:2000")
	batch := newSendBatch()
	add := func(to netip.AddrPort, n, size int) {
		for i := 0; i < n; i++ {
			batch.add(s, to, make([]byte, size))
		}
	}
	add(a, 3, 10)   // joined
	add(b, 2, 10)   // another address: joined apart
	add(b, 1, 9)    // another size
	add(a, 1, 0)    // empty: alone
	add(a, 2, 1500) // too big to join
	add(a, 55, 20)  // 55 joined
	w := batch.pack(s, 0, batch.n)
	got := fmt.Sprint(batch.wireLen[:w])
	if want := "[3 2 1 1 1 1 55]"; got != want {
		t.Errorf("datagrams per message %s, want %s", got, want)
	}
	s.noSegments = true
	if w := batch.pack(s, 0, batch.n); w != batch.n {
		t.Errorf("with segments off: %d messages for %d datagrams", w, batch.n)
	}
}
