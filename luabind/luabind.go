// Package luabind installs the UDPIPE engine into a gopher-lua state.
//
// After Install, a script can `require 'UDPIPE'` (or 'UDPIPEVERBOSE') and
// use the API of the original Lua library unchanged. The Lua side of the
// class lives in lua/UDPIPE.lua; this package supplies the Go half that it
// calls ("udpipe.core") and a small LuaSocket-like "socket" module.
//
// Each Lua instance owns one engine.Endpoint. Its events are handed to the
// instance's callbacks (onNewMessage, ...) from inside step(), on the
// goroutine running the script; the binding starts no goroutine.
package luabind

import (
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/udpipe/udpipe/engine"
	luasrc "github.com/udpipe/udpipe/lua"
	lua "github.com/yuin/gopher-lua"
)

// hostState is what the binding keeps for one *lua.LState.
type hostState struct {
	instances map[*instance]struct{} // open instances, for CloseAll
	clock     engine.Clock           // nil: the engine's default, the system clock
	debugOut  io.Writer              // where debugging lines go; nil: os.Stderr
	interrupt atomic.Pointer[string] // set by Interrupt, read by step and sleep
}

// states maps each installed *lua.LState to its hostState. Interrupt may
// come from any goroutine, hence the lock.
var (
	statesMu sync.Mutex
	states   = map[*lua.LState]*hostState{}
)

func stateOf(L *lua.LState) *hostState {
	statesMu.Lock()
	defer statesMu.Unlock()
	hs := states[L]
	if hs == nil {
		hs = &hostState{instances: map[*instance]struct{}{}}
		states[L] = hs
	}
	return hs
}

// Install preloads the modules UDPIPE, UDPIPEVERBOSE, udpipe.core, socket
// and udpipe.console into L, so that require finds them.
func Install(L *lua.LState) {
	stateOf(L)
	L.PreloadModule("udpipe.core", loadCore)
	L.PreloadModule("UDPIPE", luaModule(L, "UDPIPE.lua", luasrc.UDPIPE))
	L.PreloadModule("UDPIPEVERBOSE", luaModule(L, "UDPIPEVERBOSE.lua", luasrc.UDPIPEVERBOSE))
	L.PreloadModule("socket", loadSocket)
	L.PreloadModule("udpipe.console", loadConsole)
}

// luaModule returns a loader that runs an embedded Lua source.
func luaModule(L *lua.LState, name, src string) lua.LGFunction {
	return func(L *lua.LState) int {
		fn, err := L.LoadString(src)
		if err != nil {
			L.RaiseError("%s: %v", name, err)
		}
		L.Push(fn)
		L.Call(0, 1)
		return 1
	}
}

// CloseAll closes every UDPIPE instance created in L: peers are sent CLOSE
// and the sockets are released, all instances at once (see
// engine.CloseAll). Callbacks such as onClose still run; an error raised
// in one is ignored, as the script is over. The host calls it when a
// script ends.
func CloseAll(L *lua.LState) {
	hs := stateOf(L)
	var eps []*engine.Endpoint
	for inst := range hs.instances {
		inst.L = L // the callbacks run here, not on a coroutine that may be over
		eps = append(eps, inst.ep)
		delete(hs.instances, inst)
	}
	L.Push(L.NewFunction(func(L *lua.LState) int {
		engine.CloseAll(eps...)
		return 0
	}))
	if err := L.PCall(0, 0, nil); err != nil {
		engine.CloseAll(eps...) // a callback failed; make sure the sockets go
	}
}

// Interrupt asks the script running in L to stop: the next step() or
// socket.sleep() raises a Lua error carrying why. It is safe to call from
// any goroutine (a signal handler, for instance).
func Interrupt(L *lua.LState, why string) {
	stateOf(L).interrupt.Store(&why)
}

// interrupted reports whether Interrupt was called for L, and why.
func interrupted(L *lua.LState) (string, bool) {
	statesMu.Lock()
	hs := states[L]
	statesMu.Unlock()
	if hs == nil {
		return "", false
	}
	if why := hs.interrupt.Load(); why != nil {
		return *why, true
	}
	return "", false
}

// SetClock makes the instances created in L from now on run their timers
// on c. Tests use an engine.ManualClock to run stalls and timeouts without
// waiting for them.
func SetClock(L *lua.LState, c engine.Clock) {
	stateOf(L).clock = c
}

// SetDebugOutput sends the debugging lines of the instances of L (setDebug,
// UDPIPEVERBOSE) to w instead of os.Stderr.
func SetDebugOutput(L *lua.LState, w io.Writer) {
	stateOf(L).debugOut = w
}

func (hs *hostState) debugWriter() io.Writer {
	if hs.debugOut != nil {
		return hs.debugOut
	}
	return os.Stderr
}
