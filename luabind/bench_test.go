package luabind

import (
	"testing"

	lua "github.com/yuin/gopher-lua"
)

// BenchmarkLuaEcho measures one round trip between a Lua server and a Lua
// client in one state, written against the documented API: the server's
// onNewMessage sends the message back, the client's sends another. 32
// messages of 64 bytes are in flight. Allocations are per round trip.
func BenchmarkLuaEcho(b *testing.B) {
	L := lua.NewState()
	defer L.Close()
	Install(L)
	defer CloseAll(L)
	if err := L.DoString(`
		local UDPIPE = require 'UDPIPE'
		server = UDPIPE() server:setTimeout(0.001) server:start(0, '127.0.0.1')
		function server:onNewMessage(msg, sock) self:send(msg, sock) end
		client = UDPIPE() client:setTimeout(0.001)
		received, up = 0, false
		local msg = string.rep('x', 64)
		function client:onConnect() up = true for i = 1, 32 do self:send(msg) end end
		function client:onNewMessage(m) received = received + 1 self:send(m) end
		client:connect(server:getAddress())
		while not up do server:step() client:step() end
		function run(n)
			local stop = received + n
			while received < stop do server:step() client:step() end
		end
	`); err != nil {
		b.Fatal(err)
	}
	run := L.GetGlobal("run")
	b.ReportAllocs()
	b.ResetTimer()
	if err := L.CallByParam(lua.P{Fn: run, Protect: true}, lua.LNumber(b.N)); err != nil {
		b.Fatal(err)
	}
}
