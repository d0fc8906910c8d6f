//go:build linux

package engine

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// A real link outage: a server and a client in two network namespaces
// joined by a veth pair, the link taken down for longer than the stall
// timeout and shorter than the disconnect timeout, then up again.

// The timings of both peers: the outage must be longer than the stall
// timeout and shorter than the disconnect timeout.
var netnsConfig = Config{
	RetryInterval:     100 * time.Millisecond,
	PingInterval:      100 * time.Millisecond,
	StallTimeout:      300 * time.Millisecond,
	DisconnectTimeout: 3 * time.Second,
	CloseLinger:       50 * time.Millisecond,
}

const netnsOutage = time.Second

// TestNetnsPeerProcess is one peer of TestNetnsLinkOutage, run inside a
// namespace by `ip netns exec`; UDPIPE_NETNS_ROLE says which. It prints
// one line per event ("port <n>", "connect", "stalled", "unstalled",
// "got <msg>", "disconnect", "close"), echoes what it gets (server), and
// takes "send <msg>" lines on stdin (client), answering "sent <msg> ok"
// or "sent <msg> <error>". It ends when stdin closes. Without the
// variable it does nothing.
func TestNetnsPeerProcess(t *testing.T) {
	role := os.Getenv("UDPIPE_NETNS_ROLE")
	if role != "server" && role != "client" {
		return
	}
	say := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	// Debugging on, as under UDPIPEVERBOSE: the lines about failed sends
	// go to the test, which checks that send errors are printed.
	cfg := netnsConfig
	cfg.Debug = failedSendLines{say}
	ep := New(cfg, func(ev *Event) {
		switch ev.Kind {
		case EventConnect:
			say("connect")
		case EventStalled:
			say("stalled")
		case EventUnstalled:
			say("unstalled")
		case EventDisconnect:
			say("disconnect")
		case EventClose:
			say("close")
		case EventNewMessage:
			say("got %s", ev.Data)
			if role == "server" {
				if err := ev.Conn.Send(append([]byte("echo:"), ev.Data...)); err != nil {
					say("error echo: %v", err)
				}
			}
		}
	})
	var conn *Conn
	if role == "server" {
		if err := ep.Listen(os.Getenv("UDPIPE_NETNS_ADDR")); err != nil {
			say("error %v", err)
			return
		}
		say("port %d", ep.Addr().Port())
	} else {
		c, err := ep.Connect(os.Getenv("UDPIPE_NETNS_SERVER"))
		if err != nil {
			say("error %v", err)
			return
		}
		conn = c
	}
	cmds := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmds <- sc.Text()
		}
		close(cmds)
	}()
	for {
		select {
		case cmd, ok := <-cmds:
			if !ok {
				st := ep.Stats()
				say("stats sent=%d received=%d senderrors=%d", st.Sent, st.Received, st.SendErrors)
				ep.Close()
				return
			}
			if msg, found := strings.CutPrefix(cmd, "send "); found && conn != nil {
				if err := conn.Send([]byte(msg)); err != nil {
					say("sent %s %v", msg, err)
				} else {
					say("sent %s ok", msg)
				}
			}
		default:
		}
		if err := ep.Step(5 * time.Millisecond); err != nil {
			say("error %v", err)
			return
		}
	}
}

// netnsPeer is a peer process, seen from the test.
type netnsPeer struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	lines []netnsLine
	more  chan struct{} // signalled on each line
	done  chan struct{} // closed when the output ends
}

type netnsLine struct {
	at   time.Time
	text string
}

// failedSendLines passes on the debugging lines about failed sends.
type failedSendLines struct {
	say func(format string, args ...any)
}

func (w failedSendLines) Write(p []byte) (int, error) {
	if line := strings.TrimSpace(string(p)); strings.Contains(line, " failed: ") {
		w.say("debug %s", line)
	}
	return len(p), nil
}

func startNetnsPeer(t *testing.T, ip, ns, role string, env ...string) *netnsPeer {
	t.Helper()
	p := &netnsPeer{t: t, name: role, more: make(chan struct{}, 1), done: make(chan struct{})}
	p.cmd = exec.Command(ip, "netns", "exec", ns, os.Args[0], "-test.run=^TestNetnsPeerProcess$")
	p.cmd.Env = append(os.Environ(), append(env, "UDPIPE_NETNS_ROLE="+role)...)
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, netnsLine{at: time.Now(), text: sc.Text()})
			p.mu.Unlock()
			select {
			case p.more <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		select {
		case <-p.done:
		case <-time.After(3 * time.Second):
			p.cmd.Process.Kill()
		}
		p.cmd.Wait()
	})
	return p
}

// wait returns the first line that starts with prefix, failing if there
// is none after d.
func (p *netnsPeer) wait(prefix string, d time.Duration) netnsLine {
	p.t.Helper()
	timeout := time.After(d)
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if strings.HasPrefix(l.text, prefix) {
				p.mu.Unlock()
				return l
			}
			if strings.HasPrefix(l.text, "error") {
				p.mu.Unlock()
				p.t.Fatalf("%s: %s", p.name, l.text)
			}
		}
		p.mu.Unlock()
		select {
		case <-p.more:
		case <-p.done:
			p.t.Fatalf("%s ended before %q; output %q", p.name, prefix, p.texts())
		case <-timeout:
			p.t.Fatalf("%s: no %q within %v; output %q", p.name, prefix, d, p.texts())
		}
	}
}

func (p *netnsPeer) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

func (p *netnsPeer) texts() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, l := range p.lines {
		out = append(out, l.text)
	}
	return out
}

func (p *netnsPeer) count(text string) int {
	n := 0
	for _, l := range p.texts() {
		if l == text {
			n++
		}
	}
	return n
}

// countPrefix counts the lines that start with prefix.
func (p *netnsPeer) countPrefix(prefix string) int {
	n := 0
	for _, l := range p.texts() {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// got returns the messages the peer got, in order.
func (p *netnsPeer) got() []string {
	var ms []string
	for _, l := range p.texts() {
		if m, ok := strings.CutPrefix(l, "got "); ok {
			ms = append(ms, m)
		}
	}
	return ms
}

func TestNetnsLinkOutage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skipf("skipping: creating network namespaces (ip netns add) needs root, and this test runs as uid %d", os.Geteuid())
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Skipf("skipping: no `ip` command (iproute2) to create network namespaces: %v", err)
	}
	run := func(args ...string) error {
		out, err := exec.Command(ip, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	pid := os.Getpid()
	nsA, nsB := fmt.Sprintf("udpipe-test-a-%d", pid), fmt.Sprintf("udpipe-test-b-%d", pid)
	vethA, vethB := fmt.Sprintf("udpa%d", pid), fmt.Sprintf("udpb%d", pid)
	for _, ns := range []string{nsA, nsB} {
		if err := run("netns", "add", ns); err != nil {
			t.Skipf("skipping: cannot create a network namespace: %v", err)
		}
		t.Cleanup(func() {
			if err := run("netns", "del", ns); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
	}
	must := func(args ...string) {
		t.Helper()
		if err := run(args...); err != nil {
			t.Fatal(err)
		}
	}
	// The veth pair is made inside A with its other end put in B: nothing
	// touches the namespace the test runs in.
	if err := run("-n", nsA, "link", "add", vethA, "type", "veth", "peer", "name", vethB, "netns", nsB); err != nil {
		t.Skipf("skipping: cannot create a veth pair between namespaces: %v", err)
	}
	must("-n", nsA, "addr", "add", "10.213.0.1/30", "dev", vethA)
	must("-n", nsB, "addr", "add", "10.213.0.2/30", "dev", vethB)
	for _, x := range [][2]string{{nsA, vethA}, {nsB, vethB}, {nsA, "lo"}, {nsB, "lo"}} {
		must("-n", x[0], "link", "set", x[1], "up")
	}

	server := startNetnsPeer(t, ip, nsA, "server", "UDPIPE_NETNS_ADDR=10.213.0.1:0")
	port := strings.TrimPrefix(server.wait("port ", 10*time.Second).text, "port ")
	client := startNetnsPeer(t, ip, nsB, "client", "UDPIPE_NETNS_SERVER=10.213.0.1:"+port)
	client.wait("connect", 5*time.Second)
	server.wait("connect", time.Second)
	client.send("send before")
	client.wait("got echo:before", 2*time.Second)

	down := time.Now()
	must("netns", "exec", nsB, ip, "link", "set", vethB, "down")
	stalled := client.wait("stalled", 2*time.Second)
	queued := []string{"q1", "q2", "q3"}
	for _, m := range queued {
		client.send("send " + m)
		client.wait("sent "+m+" ", time.Second)
	}
	time.Sleep(time.Until(down.Add(netnsOutage)))
	// The link is up somewhere during the command: q1 may pass before it
	// returns, not before it starts.
	bringingUp := time.Now()
	must("netns", "exec", nsB, ip, "link", "set", vethB, "up")
	up := time.Now()
	unstalled := client.wait("unstalled", 2*time.Second)
	client.send("send later")
	client.wait("got echo:later", 2*time.Second)
	time.Sleep(200 * time.Millisecond) // anything else would show now

	t.Logf("link down for %v: client stalled %v after the link went down, unstalled %v after it came up",
		up.Sub(down).Truncate(time.Millisecond), stalled.at.Sub(down).Truncate(time.Millisecond),
		unstalled.at.Sub(up).Truncate(time.Millisecond))
	for _, m := range queued {
		if l := client.wait("sent "+m+" ", 0); l.text != "sent "+m+" ok" {
			t.Errorf("client, while stalled: %s", l.text)
		}
	}
	want := []string{"before", "q1", "q2", "q3", "later"}
	if got := server.got(); !slices.Equal(got, want) {
		t.Errorf("server got %q, want %q", got, want)
	}
	var wantEcho []string
	for _, m := range want {
		wantEcho = append(wantEcho, "echo:"+m)
	}
	if got := client.got(); !slices.Equal(got, wantEcho) {
		t.Errorf("client got %q, want %q", got, wantEcho)
	}
	if l := server.wait("got q1", 0); l.at.Before(bringingUp) {
		t.Errorf("q1 reached the server %v before the link was brought up", bringingUp.Sub(l.at))
	}
	for _, p := range []*netnsPeer{client, server} {
		if s, u := p.count("stalled"), p.count("unstalled"); s != 1 || u != 1 {
			t.Errorf("%s: %d stalled and %d unstalled, want 1 and 1; output %q", p.name, s, u, p.texts())
		}
		if p.count("disconnect")+p.count("close") != 0 {
			t.Errorf("%s: the connection ended; output %q", p.name, p.texts())
		}
	}
	client.stdin.Close()
	server.stdin.Close()
	cstats := client.wait("stats", 3*time.Second).text
	t.Logf("client: %s; server: %s", cstats, server.wait("stats", 3*time.Second).text)
	// While the link was down the client's pings could not be sent: the
	// engine counted the errors, printed them under debugging, went on.
	if strings.HasSuffix(cstats, "senderrors=0") {
		t.Errorf("the client counted no send error while its link was down")
	} else if n := client.countPrefix("debug "); n == 0 {
		t.Errorf("send errors were counted but not printed under debugging")
	} else {
		t.Logf("client printed %d failed sends, e.g. %q", n, client.wait("debug ", 0).text)
	}
}
