//go:build linux

package engine

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Hostile input on real loopback sockets: garbage and misplaced control
// words sent to every socket of a server and a client, a flood of HELLOs
// from thousands of source ports against a server in a process of its
// own, and the per-source rate limit of the answers to HELLO.

// floodSocket opens a non-blocking IPv4 UDP socket bound to ip:0, with
// plain system calls: thousands of them cost the test process nothing
// but their descriptors.
func floodSocket(ip [4]byte) (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: ip}); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

func floodSend(fd int, to netip.AddrPort, b []byte) error {
	return syscall.Sendto(fd, b, 0, &syscall.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().As4()})
}

// floodRecv reads one waiting datagram, if any.
func floodRecv(fd int, buf []byte) ([]byte, bool) {
	n, _, err := syscall.Recvfrom(fd, buf, syscall.MSG_DONTWAIT)
	if err != nil || n < 0 {
		return nil, false
	}
	return buf[:n], true
}

// floodListFDs lists the descriptors of process pid and what they are.
func floodListFDs(pid string) []string {
	ents, _ := os.ReadDir("/proc/" + pid + "/fd")
	var out []string
	for _, e := range ents {
		target, _ := os.Readlink("/proc/" + pid + "/fd/" + e.Name())
		out = append(out, e.Name()+"="+target)
	}
	return out
}

// floodRaiseNoFile makes room for n more descriptors in this process.
func floodRaiseNoFile(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	want := uint64(relFDs(t, "self")) + n + 256
	if lim.Cur >= want {
		return
	}
	lim.Cur = min(max(want, lim.Cur), lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < want {
		t.Fatalf("RLIMIT_NOFILE %d (max %d) leaves no room for %d sockets: %v", lim.Cur, lim.Max, n, err)
	}
}

// The words of the protocol, malformed, truncated, padded and misplaced.
func garbageWords() [][]byte {
	words := []string{
		"", "HELLO", "HELLO ", "HELLO x", "HELLO\x00", "HELLO  ", "hello ",
		"CONNECT", "CONNECTED", "CLOSE", "CLOSED", "PONG", "PING", "GO AWAY!",
		"CONNECT 1.2.3.4 5", "CONNECT 127.0.0.1 1", "CONNECT 0.0.0.0 9", "CONNECT ::1 80",
		"CONNECT 127.0.0.1 0", "CONNECT 127.0.0.1 65536", "CONNECT x y", "CONNECT  ", "CONNECT 1.2.3.4",
		"CONNECT fe80::1%eth0 80", "CONNECTED ", "CLOSE ", "CLOSED\n", "PING\n", "PONG ", "GO AWAY",
		"GO AWAY!!", " PING", "CLOS", "PIN", "\x00\x00\x00\x00",
	}
	out := make([][]byte, 0, len(words)+3)
	for _, w := range words {
		out = append(out, []byte(w))
	}
	out = append(out, append([]byte("HELLO "), make([]byte, 60000)...)) // a 60 kB token
	big := make([]byte, MaxDatagram)
	for i := range big {
		big[i] = byte(i)
	}
	out = append(out, big)
	out = append(out, append([]byte("HELLO "), big[:MaxDatagram-6]...))
	return out
}

// 10,000 random datagrams and every malformed or misplaced control word,
// from strangers, to the server's listening socket S, to the data socket
// SC of a connected client and to the client's own socket, while that
// client goes on talking to the server.
func TestGarbageDoesNotHurt(t *testing.T) {
	// The Go runtime's poller opens its descriptors on the first use of
	// package net: use it once before counting.
	if warm, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err == nil {
		warm.Close()
	}
	fdsBefore := relFDs(t, "self")

	srec, crec := &relRec{clock: SystemClock{}}, &relRec{clock: SystemClock{}}
	cfg := Config{CloseLinger: 20 * time.Millisecond}
	srv := New(cfg, func(ev *Event) {
		srec.handle(ev)
		if ev.Kind == EventNewMessage {
			if err := ev.Conn.Send(append([]byte("echo:"), ev.Data...)); err != nil {
				t.Errorf("echo: %v", err)
			}
		}
	})
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	cli := New(cfg, crec.handle)
	conn, err := cli.Connect(srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var attackers []*net.UDPConn
	closeAll := func() {
		cli.Close()
		srv.Close()
		for _, a := range attackers {
			a.Close()
		}
		attackers = nil
	}
	t.Cleanup(closeAll)

	step := func() {
		t.Helper()
		if err := srv.Step(0); err != nil {
			t.Fatalf("server Step: %v", err)
		}
		if err := cli.Step(time.Millisecond); err != nil {
			t.Fatalf("client Step: %v", err)
		}
	}
	until := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(3 * time.Second); !cond(); step() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; server events %v; client events %v", what, srec.kinds(), crec.kinds())
			}
		}
	}
	until("the handshake", func() bool { return srec.count(EventConnect) == 1 && crec.count(EventConnect) == 1 })
	ev, _ := srec.first(EventConnect)
	sconn := ev.conn
	sc := sconn.LocalAddr()
	S := srv.Addr()
	C := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), cli.Addr().Port())
	targets := []netip.AddrPort{S, sc, C}
	t.Logf("S %v, SC %v, client %v", S, sc, C)

	for i := 0; i < 4; i++ {
		a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		attackers = append(attackers, a)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var toS, toSC, toC, helloS int
	send := func(to netip.AddrPort, b []byte) {
		t.Helper()
		a := attackers[rng.IntN(len(attackers))]
		if _, err := a.WriteToUDPAddrPort(b, to); err != nil {
			t.Fatalf("send %d bytes to %v: %v", len(b), to, err)
		}
		switch to {
		case S:
			toS++
			if Parse(b).Kind == KindHello {
				helloS++
			}
		case sc:
			toSC++
		case C:
			toC++
		}
	}
	exchanged := 0
	exchange := func() {
		t.Helper()
		msg := fmt.Sprint("msg ", exchanged)
		if err := conn.Send([]byte(msg)); err != nil {
			t.Fatalf("Send(%q): %v", msg, err)
		}
		exchanged++
		until("the echo of "+msg, func() bool { return len(crec.messages()) >= exchanged })
	}

	sDropped, cDropped := srv.Stats().Dropped, cli.Stats().Dropped
	for _, w := range garbageWords() {
		for _, to := range targets {
			send(to, w)
		}
		exchange()
	}
	for i := 0; i < 10000; i++ {
		b := make([]byte, rng.IntN(2001))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		send(targets[rng.IntN(len(targets))], b)
		if i%20 == 19 {
			exchange()
		}
	}
	// What is still on its way.
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
		step()
	}

	sst, cst := srv.Stats(), cli.Stats()
	t.Logf("sent %d datagrams to S (%d HELLO-like), %d to SC, %d to the client; %d messages echoed meanwhile",
		toS, helloS, toSC, toC, exchanged)
	t.Logf("server: dropped %d more (received %d in all), %d clients, %d half-open, %d bad tokens, %d accepted HELLOs; client: dropped %d more",
		sst.Dropped-sDropped, sst.Received, sst.Clients, sst.HalfOpen, srec.count(EventBadToken), srec.count(EventNewClient)-1,
		cst.Dropped-cDropped)

	// The conversation went on, in order, with nothing from strangers.
	var want, wantEcho []string
	for i := 0; i < exchanged; i++ {
		want = append(want, fmt.Sprint("msg ", i))
		wantEcho = append(wantEcho, fmt.Sprint("echo:msg ", i))
	}
	if got := srec.messages(); !slices.Equal(got, want) {
		t.Errorf("the server's handler got %d messages, want the client's %d (in order); first ones %q", len(got), len(want), got[:min(len(got), 5)])
	}
	if got := crec.messages(); !slices.Equal(got, wantEcho) {
		t.Errorf("the client's handler got %d messages, want the %d echoes (in order)", len(got), len(wantEcho))
	}
	for _, e := range srec.evs {
		if e.kind == EventNewMessage && e.conn != sconn {
			t.Errorf("the server got a message on a stranger's connection %v: %q", e.conn, e.data)
		}
	}
	if n := srec.count(EventConnect); n != 1 {
		t.Errorf("%d EventConnect on the server, want 1 (strangers cannot connect with CONNECT alone)", n)
	}
	for side, r := range map[string]*relRec{"server": srec, "client": crec} {
		if n := r.count(EventClose) + r.count(EventDisconnect); n != 0 {
			t.Errorf("%s: the connection ended; events %v", side, r.kinds())
		}
		if n := r.count(EventStalled); n != 0 {
			t.Errorf("%s: %d EventStalled", side, n)
		}
	}
	if conn.State() != StateConnected || sconn.State() != StateConnected {
		t.Errorf("client's connection %v, server's %v; want both connected", conn.State(), sconn.State())
	}
	if sst.Clients != 1 {
		t.Errorf("server has %d clients, want 1", sst.Clients)
	}
	// Everything to S but the HELLOs, and everything to SC, is dropped
	// (allow for datagrams the kernel itself may have dropped).
	if min := uint64(toS-helloS+toSC) * 9 / 10; sst.Dropped-sDropped < min {
		t.Errorf("server's Dropped grew by %d, want at least %d", sst.Dropped-sDropped, min)
	}
	if min := uint64(toC) * 9 / 10; cst.Dropped-cDropped < min {
		t.Errorf("client's Dropped grew by %d, want at least %d", cst.Dropped-cDropped, min)
	}
	if sconn.Stats().Dropped == 0 {
		t.Error("the data socket dropped nothing")
	}

	closeAll()
	if n := relFDs(t, "self"); n != fdsBefore {
		t.Errorf("%d descriptors open before the server was made, %d after everything was closed", fdsBefore, n)
	}
}

// The server of the flood test, in a process of its own so that its
// descriptors can be counted: it prints "PORT <port>", steps until its
// stdin closes, echoing messages, then prints "STATS ..." and exits. Run
// by TestFloodHelloFromManyPorts; otherwise it does nothing.
func TestFloodServerProcess(t *testing.T) {
	if os.Getenv("UDPIPE_FLOOD_SERVER") != "1" {
		return
	}
	timeout, _ := time.ParseDuration(os.Getenv("UDPIPE_FLOOD_CONNECT_TIMEOUT"))
	var lastNewClient time.Time // when the last data socket was offered
	srv := New(Config{ConnectTimeout: timeout, CloseLinger: 20 * time.Millisecond}, func(ev *Event) {
		switch ev.Kind {
		case EventNewMessage:
			ev.Conn.Send(append([]byte("echo:"), ev.Data...))
		case EventNewClient:
			lastNewClient = time.Now()
		}
	})
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		fmt.Println("ERROR", err)
		return
	}
	// The Go runtime opens descriptors of its own the first time it needs
	// its poller (a timer, package net): make it do so now, before the
	// test counts this process's descriptors.
	if c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err == nil {
		c.Close()
	}
	time.Sleep(time.Millisecond)
	fmt.Printf("PORT %d\n", srv.Addr().Port())
	var done atomic.Bool
	go func() {
		io.Copy(io.Discard, os.Stdin)
		done.Store(true)
	}()
	peak, backlogPeak := 0, 0
	var received uint64
	var lastReceived time.Time // when the last datagram was taken in
	for !done.Load() {
		if err := srv.Step(10 * time.Millisecond); err != nil {
			fmt.Println("ERROR", err)
			return
		}
		st := srv.Stats()
		if st.Received != received {
			received, lastReceived = st.Received, time.Now()
		}
		peak = max(peak, st.HalfOpen)
		backlogPeak = max(backlogPeak, st.Backlog)
	}
	st := srv.Stats()
	fmt.Printf("STATS received=%d sent=%d dropped=%d evicted=%d crowded=%d halfopen_peak=%d backlog_peak=%d halfopen=%d clients=%d last_received=%d last_new_client=%d\n",
		st.Received, st.Sent, st.Dropped, st.Evicted, st.Crowded, peak, backlogPeak, st.HalfOpen, st.Clients,
		lastReceived.UnixNano(), lastNewClient.UnixNano())
	srv.Close()
}

// A flood of HELLOs from 3000 source ports (half of them twice) against a
// server in another process: its open descriptors stay under 600 and
// come back to where they were within the connect timeout, and a real
// client connects and is served during the flood.
func TestFloodHelloFromManyPorts(t *testing.T) {
	const (
		ports          = 3000
		connectTimeout = 2 * time.Second
		floodTime      = time.Second // the HELLOs are spread over this
	)
	floodRaiseNoFile(t, ports)

	cmd := exec.Command(os.Args[0], "-test.run=^TestFloodServerProcess$")
	cmd.Env = append(os.Environ(), "UDPIPE_FLOOD_SERVER=1", "UDPIPE_FLOOD_CONNECT_TIMEOUT="+connectTimeout.String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	waitLine := func(prefix string) string {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the server process ended before %q; stderr: %s", prefix, stderr.String())
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
				if strings.HasPrefix(l, "ERROR") {
					t.Fatalf("server process: %s", l)
				}
			case <-timeout:
				t.Fatalf("no %q from the server process", prefix)
			}
		}
	}
	port, err := strconv.Atoi(strings.TrimPrefix(waitLine("PORT "), "PORT "))
	if err != nil {
		t.Fatal(err)
	}
	server := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	pid := strconv.Itoa(cmd.Process.Pid)
	time.Sleep(50 * time.Millisecond)
	baseline := relFDs(t, pid)
	baselineFDs := floodListFDs(pid)

	// Count the server's descriptors every 2 ms from now on.
	var peak, last atomic.Int64
	stopSampling := make(chan struct{})
	var sampling sync.WaitGroup
	sampling.Add(1)
	samples := 0
	go func() {
		defer sampling.Done()
		for {
			ents, err := os.ReadDir("/proc/" + pid + "/fd")
			if err == nil {
				n := int64(len(ents))
				last.Store(n)
				if n > peak.Load() {
					peak.Store(n)
				}
				samples++
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	stopSamplingOnce := sync.OnceFunc(func() { close(stopSampling); sampling.Wait() })
	t.Cleanup(stopSamplingOnce)

	socks := make([]int, 0, ports)
	t.Cleanup(func() {
		for _, fd := range socks {
			syscall.Close(fd)
		}
	})
	for i := 0; i < ports; i++ {
		fd, err := floodSocket([4]byte{127, 0, 0, 1})
		if err != nil {
			t.Fatalf("socket %d: %v", i, err)
		}
		socks = append(socks, fd)
	}

	// The real client, on a goroutine of its own, once a third of the
	// flood has gone.
	type clientResult struct {
		connected, echoed time.Time
		err               error
	}
	startClient := make(chan struct{})
	closeClient := make(chan struct{})
	result := make(chan clientResult, 1)
	clientDone := make(chan struct{})
	go func() {
		defer close(clientDone)
		select {
		case <-startClient:
		case <-closeClient: // the test ended early
			return
		}
		var r clientResult
		cli := New(Config{CloseLinger: 100 * time.Millisecond}, func(ev *Event) {
			switch ev.Kind {
			case EventConnect:
				r.connected = time.Now()
				if err := ev.Conn.Send([]byte("during the flood")); err != nil {
					r.err = err
				}
			case EventNewMessage:
				if string(ev.Data) == "echo:during the flood" && r.echoed.IsZero() {
					r.echoed = time.Now()
				}
			case EventDisconnect:
				r.err = fmt.Errorf("EventDisconnect")
			}
		})
		defer cli.Close()
		if _, err := cli.Connect(server.String()); err != nil {
			result <- clientResult{err: err}
			return
		}
		for deadline := time.Now().Add(5 * time.Second); r.echoed.IsZero() && r.err == nil && time.Now().Before(deadline); {
			if err := cli.Step(time.Millisecond); err != nil {
				r.err = err
			}
		}
		result <- r
		// Stay connected until told, then close properly.
		for {
			select {
			case <-closeClient:
				return
			default:
				cli.Step(time.Millisecond)
			}
		}
	}()
	defer func() {
		select {
		case <-closeClient:
		default:
			close(closeClient)
		}
		<-clientDone
	}()

	hello := []byte("HELLO ")
	sendErrors := 0
	sent := 0
	floodStart := time.Now()
	var clientStart time.Time
	perHello := floodTime / (ports * 3 / 2)
	for i := 0; i < ports; i++ {
		if due := floodStart.Add(time.Duration(sent) * perHello); time.Until(due) > 0 {
			time.Sleep(time.Until(due))
		}
		if i == ports/3 {
			clientStart = time.Now()
			close(startClient)
		}
		if floodSend(socks[i], server, hello) != nil {
			sendErrors++
		}
		sent++
		// Half the sources say HELLO again a little later.
		if j := i - 100; j >= 0 && j%2 == 0 {
			if floodSend(socks[j], server, hello) != nil {
				sendErrors++
			}
			sent++
		}
	}
	for j := ports - 100; j < ports; j++ {
		if j%2 == 0 {
			if floodSend(socks[j], server, hello) != nil {
				sendErrors++
			}
			sent++
		}
	}
	floodEnd := time.Now()
	peakDuringFlood := peak.Load()

	var r clientResult
	select {
	case r = <-result:
	case <-time.After(6 * time.Second):
		t.Fatal("the client neither finished nor failed")
	}
	if r.err != nil || r.echoed.IsZero() {
		t.Errorf("the real client was not served: connected %v, echoed %v, error %v", !r.connected.IsZero(), !r.echoed.IsZero(), r.err)
	} else {
		t.Logf("the real client started %v into the flood, connected %v in, got its echo %v in; the flood of %d HELLOs lasted %v",
			clientStart.Sub(floodStart).Truncate(time.Millisecond), r.connected.Sub(floodStart).Truncate(time.Millisecond),
			r.echoed.Sub(floodStart).Truncate(time.Millisecond), sent, floodEnd.Sub(floodStart).Truncate(time.Millisecond))
		if r.echoed.After(floodEnd) {
			t.Errorf("the real client got its echo %v after the flood ended, not during it", r.echoed.Sub(floodEnd))
		}
	}
	close(closeClient)
	<-clientDone

	// Back to the baseline within the connect timeout (and a little for
	// the server's step and our sampling).
	var backAfter time.Duration
	for deadline := floodEnd.Add(connectTimeout + 3*time.Second); ; {
		time.Sleep(5 * time.Millisecond)
		if last.Load() <= int64(baseline) {
			backAfter = time.Since(floodEnd)
			break
		}
		if time.Now().After(deadline) {
			backAfter = -1
			break
		}
	}
	afterFDs := floodListFDs(pid)
	stopSamplingOnce()
	stdin.Close()
	stats := waitLine("STATS ")
	t.Logf("server process: %d descriptors before the flood, peak %d (%d during the flood), %d samples; %s; %d send errors",
		baseline, peak.Load(), peakDuringFlood, samples, stats, sendErrors)
	if p := peak.Load(); p >= 600 {
		t.Errorf("the server process had %d descriptors open at the peak, want under 600", p)
	}
	if peak.Load() <= int64(baseline)+100 {
		t.Errorf("peak %d, baseline %d: the flood did not reach the server", peak.Load(), baseline)
	}
	fields := map[string]int64{}
	for _, f := range strings.Fields(strings.TrimPrefix(stats, "STATS ")) {
		k, v, _ := strings.Cut(f, "=")
		fields[k], _ = strconv.ParseInt(v, 10, 64)
	}
	// When the server offered its last data socket, against the end of
	// the flood: a socket offered late lives a connect timeout from then.
	lastOffer := time.Unix(0, fields["last_new_client"]).Sub(floodEnd)
	lastTakenIn := time.Unix(0, fields["last_received"]).Sub(floodEnd)
	const slack = 100 * time.Millisecond // the server's step, our sampling, scheduling
	switch {
	case backAfter < 0:
		t.Errorf("the server process still has %d descriptors (baseline %d: %v) %v after the flood: %v",
			last.Load(), baseline, baselineFDs, connectTimeout+3*time.Second, afterFDs)
	case backAfter > connectTimeout+slack:
		t.Errorf("descriptors came back to the baseline %d only %v after the last HELLO, want within the connect timeout %v (+%v slack): "+
			"the server had taken in its last datagram %v after the last HELLO was sent, but offered its last data socket %v after it (backlog peak %d); "+
			"that socket lived its connect timeout from then",
			baseline, backAfter.Truncate(time.Millisecond), connectTimeout, slack, lastTakenIn.Truncate(time.Millisecond),
			lastOffer.Truncate(time.Millisecond), fields["backlog_peak"])
	default:
		t.Logf("descriptors back to the baseline %d %v after the last HELLO (connect timeout %v); last datagram taken in %v and last data socket offered %v after the last HELLO was sent",
			baseline, backAfter.Truncate(time.Millisecond), connectTimeout, lastTakenIn.Truncate(time.Millisecond), lastOffer.Truncate(time.Millisecond))
	}
	if fields["received"] < int64(sent)*9/10 {
		t.Errorf("the server received %d datagrams of the %d HELLOs sent", fields["received"], sent)
	}
	if fields["evicted"] == 0 || fields["halfopen_peak"] > 256 {
		t.Errorf("evicted %d, half-open peak %d: want evictions and the default cap of 256 kept", fields["evicted"], fields["halfopen_peak"])
	}
}

// The answers to HELLO are rate-limited per source IP, loopback included
// when LimitLoopback is set: 100 HELLOs from 100 ports of 127.0.0.1 get
// the burst of 10 answers (and what 5 per second adds), and a HELLO from
// another IP is still answered.
func TestFloodHelloRateLimited(t *testing.T) {
	srv := New(Config{LimitLoopback: true, HelloRate: 5, HelloBurst: 10, CloseLinger: 10 * time.Millisecond}, nil)
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	const n = 100
	var socks []int
	t.Cleanup(func() {
		for _, fd := range socks {
			syscall.Close(fd)
		}
	})
	for i := 0; i < n+1; i++ {
		ip := [4]byte{127, 0, 0, 1}
		if i == n {
			ip = [4]byte{127, 0, 0, 2} // another source IP
		}
		fd, err := floodSocket(ip)
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, fd)
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := floodSend(socks[i], srv.Addr(), []byte("HELLO ")); err != nil {
			t.Fatal(err)
		}
		if i%20 == 19 {
			srv.Step(0)
		}
	}
	replies := 0
	buf := make([]byte, 2048)
	for end := start.Add(300 * time.Millisecond); time.Now().Before(end); {
		srv.Step(time.Millisecond)
		for _, fd := range socks[:n] {
			for {
				b, ok := floodRecv(fd, buf)
				if !ok {
					break
				}
				if Parse(b).Kind != KindConnectTo {
					t.Errorf("reply %q", b)
				}
				replies++
			}
		}
	}
	st := srv.Stats()
	t.Logf("100 HELLOs from 100 ports of 127.0.0.1 (rate 5/s, burst 10): %d answered within 300 ms, RateLimited %d, received %d",
		replies, st.RateLimited, st.Received)
	if replies < 10 || replies > 15 {
		t.Errorf("%d HELLOs answered, want 10 to 15", replies)
	}
	if st.Received != n {
		t.Errorf("server received %d datagrams, want %d", st.Received, n)
	}
	if int(st.RateLimited) != n-replies {
		t.Errorf("RateLimited = %d, want %d (HELLOs not answered)", st.RateLimited, n-replies)
	}
	// Another source is not held back by the first one's bucket.
	if err := floodSend(socks[n], srv.Addr(), []byte("HELLO ")); err != nil {
		t.Fatal(err)
	}
	got := false
	for end := time.Now().Add(time.Second); !got && time.Now().Before(end); {
		srv.Step(time.Millisecond)
		_, got = floodRecv(socks[n], buf)
	}
	if !got {
		t.Error("a HELLO from 127.0.0.2 got no answer after 127.0.0.1 used up its bucket")
	}
}
