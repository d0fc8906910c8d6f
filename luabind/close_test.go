package luabind

import (
	"os"
	"runtime"
	"testing"
	"time"
)

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("cannot count descriptors: %v", err)
	}
	return len(entries)
}

// After close(), no socket and no goroutine of the instances remain.
func TestCloseLeavesNothing(t *testing.T) {
	L := newState(t)
	fds, goroutines := openFDs(t), runtime.NumGoroutine()
	err := L.DoString(`
		local T = require 'testlib'
		local UDPIPE = require 'UDPIPE'
		local server = UDPIPE() server:setTimeout(0) server:start(0, '127.0.0.1')
		local clients, up = {}, 0
		function server:onConnect() up = up + 1 end
		for i = 1, 5 do
			clients[i] = UDPIPE() clients[i]:setTimeout(0)
			clients[i]:connect(server:getAddress())
		end
		local all = { server, unpack(clients) }
		T.stepUntil(all, function() return up == 5 end, 'five clients')
		sockets_while_open = #server:getClients()
		for _, c in ipairs(clients) do c:close() end
		server:close()
	`)
	if err != nil {
		t.Fatal(err)
	}
	if n := L.GetGlobal("sockets_while_open"); n.String() != "5" {
		t.Fatalf("server had %v clients, want 5", n)
	}
	if got := openFDs(t); got != fds {
		t.Errorf("open descriptors: %d after close, %d before", got, fds)
	}
	// Nothing of ours runs in a goroutine; allow the runtime a moment in
	// case the test framework's own goroutines come and go.
	deadline := time.Now().Add(time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := runtime.NumGoroutine(); got > goroutines {
		t.Errorf("goroutines: %d after close, %d before", got, goroutines)
	}
}

// CloseAll closes the instances a script left open, and their peers hear
// CLOSE at once.
func TestCloseAllTellsPeers(t *testing.T) {
	server := newState(t)
	fds := openFDs(t)
	if err := server.DoString(`
		UDPIPE = require 'UDPIPE'
		server = UDPIPE() server:setTimeout(0) server:start(0, '127.0.0.1')
		closed = 0
		function server:onClose() closed = closed + 1 end
		ip, port = server:getAddress()
	`); err != nil {
		t.Fatal(err)
	}
	client := newState(t)
	client.SetGlobal("port", server.GetGlobal("port"))
	if err := client.DoString(`
		local UDPIPE = require 'UDPIPE'
		c = UDPIPE() c:setTimeout(0) c:connect('127.0.0.1', port)
		up = false
		function c:onConnect() up = true end
	`); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000 && client.GetGlobal("up").String() != "true"; i++ {
		if err := server.DoString(`server:step()`); err != nil {
			t.Fatal(err)
		}
		if err := client.DoString(`c:step()`); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if client.GetGlobal("up").String() != "true" {
		t.Fatal("client did not connect")
	}
	// The client's script ends: the host calls CloseAll. The server's
	// close linger answers it only if the server steps meanwhile, so step
	// the server in the background of this test.
	done := make(chan struct{})
	go func() {
		CloseAll(client)
		close(done)
	}()
	deadline := time.Now().Add(2 * time.Second)
	for server.GetGlobal("closed").String() != "1" && time.Now().Before(deadline) {
		if err := server.DoString(`server:step()`); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	if server.GetGlobal("closed").String() != "1" {
		t.Fatal("server did not see onClose after the client's CloseAll")
	}
	CloseAll(server)
	if got := openFDs(t); got != fds {
		t.Errorf("open descriptors: %d after CloseAll, %d before", got, fds)
	}
}
