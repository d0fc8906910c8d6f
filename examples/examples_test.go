// Package examples_test runs the scripts in this folder with udpipe-lua,
// as a user would: the original's documented server.lua and client.lua,
// unchanged, as two processes, and demo.lua.
package examples_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var host string // the udpipe-lua binary, built once

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "udpipe-examples")
	if err != nil {
		panic(err)
	}
	host = filepath.Join(dir, "udpipe-lua")
	build := exec.Command("go", "build", "-o", host, "../cmd/udpipe-lua")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		panic("building udpipe-lua: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a running udpipe-lua script.
type process struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser // set by startWithInput
	stdout *bufio.Reader
	stderr *bytes.Buffer
	lines  chan string
}

func start(t *testing.T, script string, args ...string) *process {
	t.Helper()
	return startCmd(t, exec.Command(host, append([]string{script}, args...)...))
}

// startWithInput starts a script whose standard input the test writes.
func startWithInput(t *testing.T, script string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(host, append([]string{script}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := startCmd(t, cmd)
	p.stdin = stdin
	return p
}

// typeLine writes a line to the process's standard input.
func (p *process) typeLine(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

func startCmd(t *testing.T, cmd *exec.Cmd) *process {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, stderr: &bytes.Buffer{}, lines: make(chan string, 100)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// waitLine waits for a line of output for up to 5 s.
func (p *process) waitLine(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("output ended before %q; stderr:\n%s", want, p.stderr)
			}
			if line == want {
				return
			}
		case <-timeout:
			t.Fatalf("no line %q within 5 s; stderr:\n%s", want, p.stderr)
		}
	}
}

// stop ends the process with SIGTERM, as a user's Ctrl-C would.
func (p *process) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
		t.Errorf("%v did not end on SIGTERM", p.cmd.Args)
	}
}

// The documented examples, unchanged, talk to each other.
func TestDocumentedExamples(t *testing.T) {
	server := start(t, "server.lua")
	time.Sleep(100 * time.Millisecond) // a head start: the client would re-send HELLO only after 0.5 s
	client := start(t, "client.lua")
	client.waitLine(t, "Got message:\tReply from server: HelloWorld")
	_ = server
}

// The same with require 'UDPIPEVERBOSE': one readable line per datagram
// and state change on stderr.
func TestDocumentedExamplesVerbose(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"server.lua", "client.lua"} {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		verbose := strings.Replace(string(src), "require 'UDPIPE'", "require 'UDPIPEVERBOSE'", 1)
		if verbose == string(src) {
			t.Fatalf("%s has no require 'UDPIPE'", name)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(verbose), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	server := start(t, filepath.Join(dir, "server.lua"))
	time.Sleep(100 * time.Millisecond)
	client := start(t, filepath.Join(dir, "client.lua"))
	client.waitLine(t, "Got message:\tReply from server: HelloWorld")
	server.stop(t)
	client.stop(t)

	clientLog, serverLog := client.stderr.String(), server.stderr.String()
	for _, want := range []string{
		`"HELLO "`, `"CONNECT 127.0.0.1 `, `"CONNECT"`, `"CONNECTED"`,
		`"HelloWorld"`, `"Reply from server: HelloWorld"`, ": connecting", ": connected",
	} {
		if !strings.Contains(clientLog, want) {
			t.Errorf("client's debugging output lacks %s:\n%s", want, clientLog)
		}
	}
	for _, want := range []string{"listening on 127.0.0.1:1234", `recv 127.0.0.1:1234 <- `, `"HELLO "`, ": connected", `"HelloWorld"`} {
		if !strings.Contains(serverLog, want) {
			t.Errorf("server's debugging output lacks %s:\n%s", want, serverLog)
		}
	}
	// One line per datagram: every line is a complete debugging line.
	for _, line := range strings.Split(strings.TrimSpace(clientLog), "\n") {
		if !strings.HasPrefix(line, "udpipe: ") && !strings.HasPrefix(line, "udpipe-lua: ") {
			t.Errorf("stray line in the client's debugging output: %q", line)
		}
	}
}

// demo.lua ends by itself, after every client has talked and closed.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, host, "demo.lua").CombinedOutput()
	if err != nil {
		t.Fatalf("demo.lua: %v\n%s", err, out)
	}
	for _, want := range []string{
		"client1: connected", "client3 got: client1 joined", "client2 got: echo: how are you?",
		"server: client3 closed", "demo done",
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

// The chat: a server relays with sendAll what each client types on its
// standard input, and announces arrivals and departures.
func TestChat(t *testing.T) {
	port := "4399"
	server := start(t, "chat_server.lua", port)
	server.waitLine(t, "chat server on 127.0.0.1:"+port)

	alice := startWithInput(t, "chat_client.lua", "alice", "127.0.0.1", port)
	alice.waitLine(t, "* alice joined")
	bob := startWithInput(t, "chat_client.lua", "bob", "127.0.0.1", port)
	bob.waitLine(t, "* bob joined")
	alice.waitLine(t, "* bob joined")

	alice.typeLine(t, "hello bob")
	bob.waitLine(t, "alice: hello bob")
	alice.waitLine(t, "alice: hello bob") // sendAll reaches the sender too
	bob.typeLine(t, "hi alice")
	alice.waitLine(t, "bob: hi alice")

	// Bob's input ends: he leaves, and the room hears of it.
	bob.stdin.Close()
	alice.waitLine(t, "* bob left")
	server.waitLine(t, "bob left")
}

// stall.lua shows a stall and the recovery, and ends by itself.
func TestStallExample(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, host, "stall.lua").CombinedOutput()
	if err != nil {
		t.Fatalf("stall.lua: %v\n%s", err, out)
	}
	text := string(out)
	order := []string{
		"client connected", "blackout for 4 s", "client: stalled", "client queued message #3",
		"client: unstalled", `server got "sent during the stall #1"`, `server got "sent during the stall #2"`,
		`server got "sent during the stall #3"`, `server got "sent after the recovery"`, "done",
	}
	at := 0
	for _, want := range order {
		i := strings.Index(text[at:], want)
		if i < 0 {
			t.Fatalf("stall.lua output lacks %q after position %d:\n%s", want, at, text)
		}
		at += i + len(want)
	}
}
