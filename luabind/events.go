package luabind

import (
	"net/netip"

	"github.com/udpipe/udpipe/engine"
	lua "github.com/yuin/gopher-lua"
)

// callbackNames are the Lua callbacks of each event, as the original
// names them.
var callbackNames = [...]string{
	engine.EventNewClient:  "onNewClient",
	engine.EventNewMessage: "onNewMessage",
	engine.EventConnect:    "onConnect",
	engine.EventConnecting: "onConnecting",
	engine.EventDisconnect: "onDisconnect",
	engine.EventClose:      "onClose",
	engine.EventStalled:    "onStalled",
	engine.EventUnstalled:  "onUnstalled",
	engine.EventMaxClients: "onMaxClients",
	engine.EventPing:       "onPing",
	engine.EventPong:       "onPong",
	engine.EventBadToken:   "onBadToken",
}

// handle is the engine's handler: it calls the Lua callback of the event.
// The callback is looked up on the object now, so a callback defined on
// the instance, its class or a subclass, even after start, is found. An
// error raised in it goes up through step() to the script.
func (in *instance) handle(ev *engine.Event) {
	L := in.L
	fn, ok := L.GetField(in.obj, callbackNames[ev.Kind]).(*lua.LFunction)
	if !ok {
		return
	}
	// Make every argument before pushing any: making a sock may use the
	// stack.
	var args [5]lua.LValue
	n := 0
	add := func(v lua.LValue) { args[n] = v; n++ }
	addAddr := func(ap netip.AddrPort) {
		add(lua.LString(ap.Addr().String()))
		add(lua.LNumber(ap.Port()))
	}
	switch ev.Kind {
	case engine.EventNewMessage:
		add(lua.LString(ev.Data))
		add(in.sock(ev.Conn))
	case engine.EventNewClient:
		add(lua.LString(ev.Data))
		addAddr(ev.Addr)
		addAddr(ev.Local)
	case engine.EventMaxClients, engine.EventBadToken:
		add(lua.LString(ev.Data))
		addAddr(ev.Addr)
	case engine.EventConnect, engine.EventConnecting:
		add(in.sock(ev.Conn))
		addAddr(ev.Addr)
	case engine.EventDisconnect, engine.EventClose:
		add(in.sock(ev.Conn))
		add(lua.LNumber(ev.Unsent))
	default: // stalled, unstalled, ping, pong
		add(in.sock(ev.Conn))
	}
	L.Push(fn)
	L.Push(in.obj)
	for _, v := range args[:n] {
		L.Push(v)
	}
	L.Call(n+1, 0)
}
