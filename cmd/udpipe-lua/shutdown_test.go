package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/udpipe/udpipe/engine"
)

// A server (the engine, in this test) sees onClose within a second when
// its client's udpipe-lua script ends, errors, calls os.exit, or gets
// SIGINT or SIGTERM: the host closes every connection on the way out.
func TestServerSeesCloseWhenClientScriptStops(t *testing.T) {
	cases := []struct {
		name   string
		ending string // what the script does once connected
		signal os.Signal
		code   int
	}{
		{"ends", `done = true`, nil, 0},
		{"errors", `error('stop here')`, nil, 1},
		{"os.exit", `os.exit(3)`, nil, 3},
		{"SIGINT", `waiting = true`, syscall.SIGINT, 130},
		{"SIGTERM", `waiting = true`, syscall.SIGTERM, 143},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			closed := make(chan struct{}, 1)
			server := engine.New(engine.Config{}, func(ev *engine.Event) {
				if ev.Kind == engine.EventClose {
					closed <- struct{}{}
				}
			})
			if err := server.Listen("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			defer server.Close()

			script := filepath.Join(t.TempDir(), "client.lua")
			src := fmt.Sprintf(`
				local UDPIPE = require 'UDPIPE'
				local client = UDPIPE()
				local connected = false
				function client:onConnect() connected = true print('connected') io.stdout:flush() end
				client:connect('127.0.0.1', %d)
				while not connected do client:step() end
				%s
				while waiting do client:step() end
			`, server.Addr().Port(), tc.ending)
			if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, script)
			stdout, _ := cmd.StdoutPipe()
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := make(chan string, 10)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()

			// Serve until the script says it is connected.
			deadline := time.Now().Add(5 * time.Second)
			for connected := false; !connected; {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("the script did not connect; stderr: %s", stderr.String())
				}
				server.Step(5 * time.Millisecond)
				select {
				case l := <-lines:
					connected = l == "connected"
				default:
				}
			}
			stopped := time.Now()
			if tc.signal != nil {
				cmd.Process.Signal(tc.signal)
			}
			// The server sees onClose within a second.
			for gotClose := false; !gotClose; {
				if time.Since(stopped) > time.Second {
					cmd.Process.Kill()
					t.Fatalf("no onClose within 1 s; stderr: %s", stderr.String())
				}
				server.Step(5 * time.Millisecond)
				select {
				case <-closed:
					gotClose = true
				default:
				}
			}
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				t.Fatal("the script did not exit")
			}
			if got := cmd.ProcessState.ExitCode(); got != tc.code {
				t.Errorf("exit status %d, want %d; stderr: %s", got, tc.code, stderr.String())
			}
		})
	}
}
