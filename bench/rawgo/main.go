// Command rawgo is the "raw Go UDP echo" reference point of the issue 4
// benchmark: the same echo as bench/lua, written with nothing but
// net.UDPConn ReadFrom/WriteTo, one datagram per system call, no batching.
// It shows what plain Go reaches on the machine, so the udpipe engine (which
// batches) and LuaSocket can be put in proportion.
//
//	rawgo -mode server -port 40000 -duration 60s
//	rawgo -mode client -port 40000 -inflight 32 -duration 3s
//
// The client keeps -inflight 64-byte messages in flight, times every reply
// and prints the same line as the Lua clients:
//
//	RESULT rtps=<round trips/s> p50_us=<> p99_us=<> ...
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"slices"
	"time"
)

const msgSize = 64

// lostAfter: a slot with no reply for this long is re-sent, so one dropped
// datagram cannot silently shrink the number in flight.
const lostAfter = time.Second

func main() {
	mode := flag.String("mode", "", "server or client")
	host := flag.String("host", "127.0.0.1", "address to listen on / send to")
	port := flag.Int("port", 40000, "server UDP port")
	inflight := flag.Int("inflight", 32, "client: messages kept in flight")
	duration := flag.Duration("duration", 3*time.Second, "how long to run (the server exits after it too)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("rawgo: ")

	ip, err := netip.ParseAddr(*host)
	if err != nil {
		log.Fatal(err)
	}
	addr := netip.AddrPortFrom(ip, uint16(*port))
	switch *mode {
	case "server":
		err = server(addr, *duration)
	case "client":
		if *inflight < 1 || *inflight > 65536 {
			log.Fatal("-inflight must be 1..65536")
		}
		err = client(addr, *inflight, *duration)
	default:
		log.Fatal("-mode must be server or client")
	}
	if err != nil {
		log.Fatal(err)
	}
}

// server echoes every datagram to its sender until duration has passed.
func server(addr netip.AddrPort, duration time.Duration) error {
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return err
	}
	defer conn.Close()
	// One deadline for the whole run rather than one per read: the deadline
	// only makes sure the process ends, and resetting it per datagram would
	// add work a plain echo server does not do.
	if err := conn.SetReadDeadline(time.Now().Add(duration)); err != nil {
		return err
	}
	fmt.Printf("READY %d\n", addr.Port())

	buf := make([]byte, 65536)
	for {
		// The AddrPort variants return the sender by value, so the loop
		// allocates nothing.
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			return err
		}
		if _, err := conn.WriteToUDPAddrPort(buf[:n], from); err != nil {
			// A client that went away is not a reason to stop serving.
			log.Print(err)
		}
	}
}

// client keeps inflight messages in flight for duration and prints RESULT.
func client(addr netip.AddrPort, inflight int, duration time.Duration) error {
	conn, err := net.ListenUDP("udp", nil)
	if err != nil {
		return err
	}
	defer conn.Close()

	// Same payload layout as bench/lua/benchlib.lua: slot (2 bytes, big
	// endian), slot generation (1 byte), filler. Payloads are built once;
	// a generation is bumped only when a slot is re-sent after a loss, so a
	// late reply to the old copy is not counted twice.
	payloads := make([][]byte, inflight)
	gens := make([]byte, inflight)
	sent := make([]time.Time, inflight)
	for i := range payloads {
		p := make([]byte, msgSize)
		p[0], p[1] = byte(i>>8), byte(i)
		for j := 3; j < msgSize; j++ {
			p[j] = 'x'
		}
		payloads[i] = p
	}
	// Round-trip times counted in 1 µs buckets (the Lua clients' clock has
	// that resolution); samples beyond the last bucket go in the last one.
	hist := make([]int64, 1_000_000)
	var count, resent int64

	send := func(slot int, now time.Time) {
		sent[slot] = now
		// Errors (an ICMP "connection refused" left over from an earlier run)
		// are not fatal: the slot is then re-sent as lost.
		conn.WriteToUDPAddrPort(payloads[slot], addr)
	}
	resendLost := func(now time.Time) {
		for i := range sent {
			if now.Sub(sent[i]) > lostAfter {
				gens[i]++
				payloads[i][2] = gens[i]
				send(i, now)
				resent++
			}
		}
	}

	t0 := time.Now()
	deadline := t0.Add(duration)
	for i := range payloads {
		send(i, time.Now())
	}

	buf := make([]byte, 65536)
	var now time.Time
	for {
		// A read deadline every 256 replies rather than every read: enough
		// to notice losses (lostAfter is long) without a timer update per
		// datagram, which a plain echo client would not do.
		if count%256 == 0 {
			conn.SetReadDeadline(time.Now().Add(lostAfter / 2))
		}
		n, _, err := conn.ReadFromUDPAddrPort(buf)
		now = time.Now()
		if err != nil {
			if now.After(deadline) {
				break
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				resendLost(now)
				conn.SetReadDeadline(now.Add(lostAfter / 2))
				continue
			}
			// "connection refused" from an ICMP error: retry like a timeout.
			continue
		}
		if n != msgSize {
			continue
		}
		slot := int(buf[0])<<8 | int(buf[1])
		if slot >= inflight || buf[2] != gens[slot] {
			continue
		}
		us := now.Sub(sent[slot]).Microseconds()
		hist[min(us, int64(len(hist)-1))]++
		count++
		if now.After(deadline) {
			break
		}
		send(slot, now)
		if count%8192 == 0 {
			resendLost(now)
		}
	}

	p50, p99 := percentiles(hist, count)
	elapsed := now.Sub(t0).Seconds()
	fmt.Printf("RESULT rtps=%.0f p50_us=%d p99_us=%d count=%d elapsed_s=%.3f inflight=%d resent=%d\n",
		float64(count)/elapsed, p50, p99, count, elapsed, inflight, resent)
	return nil
}

// percentiles returns the 50th and 99th percentile bucket of hist.
func percentiles(hist []int64, total int64) (p50, p99 int) {
	if total == 0 {
		return 0, 0
	}
	want := []float64{0.50 * float64(total), 0.99 * float64(total)}
	got := []int{-1, -1}
	var seen int64
	for us, n := range hist {
		seen += n
		for k := range want {
			if got[k] < 0 && float64(seen) >= want[k] {
				got[k] = us
			}
		}
		if !slices.Contains(got, -1) {
			break
		}
	}
	return got[0], got[1]
}
