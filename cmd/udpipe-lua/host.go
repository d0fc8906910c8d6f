package main

import (
	"fmt"
	"os"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/udpipe/udpipe/luabind"
)

// host owns the Lua state and everything around it: running chunks,
// reporting errors, signals and the orderly exit.
type host struct {
	L         *lua.LState
	handler   *lua.LFunction // error handler that appends a traceback
	traceback lua.LValue     // debug.traceback, as it was at start-up
	stdFiles  []lua.LValue   // io.stdout and io.stderr, flushed on exit
	sig       *signals
	closed    bool // CloseAll has run (or is running)
}

func newHost(L *lua.LState) *host {
	h := &host{L: L}
	h.sig = newSignals(L)
	return h
}

// install prepares the state: the error handler, os.exit, the Lua module
// loader and the files to flush on exit.
func (h *host) install() {
	L := h.L
	h.handler = L.NewFunction(h.addTraceback)
	h.traceback = L.GetField(L.GetGlobal("debug"), "traceback")
	if os, ok := L.GetGlobal("os").(*lua.LTable); ok {
		os.RawSetString("exit", L.NewFunction(h.osExit))
	}
	if io, ok := L.GetGlobal("io").(*lua.LTable); ok {
		h.stdFiles = []lua.LValue{io.RawGetString("stdout"), io.RawGetString("stderr")}
	}
	h.installLoader()
}

// addTraceback is the error handler of every protected call, like lua 5.1's
// traceback(): a string (or number) message gets a stack traceback
// appended; any other error value is kept intact.
func (h *host) addTraceback(L *lua.LState) int {
	msg := L.Get(1)
	if !isStringy(msg) || h.traceback.Type() != lua.LTFunction {
		L.Push(msg)
		return 1
	}
	L.Push(h.traceback)
	L.Push(lua.LString(lua.LVAsString(msg)))
	L.Push(lua.LNumber(2)) // skip debug.traceback and this handler
	L.Call(2, 1)
	return 1
}

// isStringy tells whether v converts to a string as lua_tostring would.
func isStringy(v lua.LValue) bool {
	switch v.(type) {
	case lua.LString, lua.LNumber:
		return true
	}
	return false
}

// docall calls fn with args in protected mode, the traceback handler
// attached. It returns the error object (nil when the call succeeded) and
// leaves nret results on the stack (all of them for lua.MultRet).
func (h *host) docall(fn *lua.LFunction, args []lua.LValue, nret int) (lua.LValue, bool) {
	L := h.L
	L.Push(fn)
	for _, a := range args {
		L.Push(a)
	}
	if err := L.PCall(len(args), nret, h.handler); err != nil {
		if ae, ok := err.(*lua.ApiError); ok {
			return ae.Object, false
		}
		return lua.LString(err.Error()), false
	}
	return nil, true
}

// reportError prints an error object as lua 5.1's report() does, prefixed
// with the program name when prefix is set. A nil error prints nothing. If
// the error is the result of SIGINT or SIGTERM, the program ends here
// instead, quietly and with the signal's status.
func (h *host) reportError(obj lua.LValue, prefix bool) {
	if code := h.sig.code(); code != 0 {
		fmt.Fprintf(os.Stderr, "%s: interrupted\n", progname)
		h.exit(code)
	}
	if obj == lua.LNil {
		return
	}
	msg := "(error object is not a string)"
	if isStringy(obj) {
		msg = lua.LVAsString(obj)
	}
	// A Go function raising an error outside any Lua frame (require called
	// for -l) leaves gopher-lua's position prefix empty: drop its space.
	msg = strings.TrimPrefix(msg, " ")
	if prefix {
		msg = progname + ": " + msg
	}
	fmt.Fprintln(os.Stderr, msg)
}

// reportLoadError prints an error that stopped a chunk from loading (a
// missing file or a syntax error), in the same shape as a runtime error.
func (h *host) reportLoadError(msg string) {
	h.reportError(lua.LString(msg+"\nstack traceback:\n\t[G]: ?"), true)
}

// runChunk runs a loaded chunk with args and reports its error, if any.
func (h *host) runChunk(fn *lua.LFunction, args []lua.LValue) bool {
	obj, ok := h.docall(fn, args, 0)
	if !ok {
		h.reportError(obj, true)
	}
	return ok
}

// luaInit runs LUA_INIT as lua 5.1 does: "@file" runs the file, anything
// else is a chunk of Lua.
func (h *host) luaInit() bool {
	init := os.Getenv("LUA_INIT")
	if init == "" {
		return true
	}
	var fn *lua.LFunction
	var msg string
	if file, ok := strings.CutPrefix(init, "@"); ok {
		fn, msg = h.loadFile(file)
	} else {
		fn, msg = h.loadString(init, "LUA_INIT")
	}
	if msg != "" {
		h.reportLoadError(msg)
		return false
	}
	return h.runChunk(fn, nil)
}

// runAction runs one -e statement or -l library.
func (h *host) runAction(a action) bool {
	if a.flag == 'e' {
		fn, msg := h.loadString(a.text, "(command line)")
		if msg != "" {
			h.reportLoadError(msg)
			return false
		}
		return h.runChunk(fn, nil)
	}
	require := h.L.NewFunction(func(L *lua.LState) int {
		L.Push(L.GetGlobal("require"))
		L.Push(lua.LString(a.text))
		L.Call(1, 0)
		return 0
	})
	return h.runChunk(require, nil)
}

// runScript sets the global arg and runs the script with its arguments.
func (h *host) runScript(o *options) bool {
	L := h.L
	L.SetGlobal("arg", buildArgTable(L, o.argv, o.script))
	var fn *lua.LFunction
	var msg string
	if o.scriptStdin {
		fn, msg = h.loadStdin()
	} else {
		fn, msg = h.loadFile(o.scriptPath())
	}
	if msg != "" {
		h.reportLoadError(msg)
		return false
	}
	var args []lua.LValue
	for _, a := range o.scriptArgs() {
		args = append(args, lua.LString(a))
	}
	return h.runChunk(fn, args)
}

// runStdin runs stdin as a chunk, without setting arg (lua with no
// arguments and stdin not a terminal).
func (h *host) runStdin() bool {
	fn, msg := h.loadStdin()
	if msg != "" {
		h.reportLoadError(msg)
		return false
	}
	return h.runChunk(fn, nil)
}

// osExit replaces os.exit: it closes every UDPIPE instance and flushes
// the standard files before the process exits. Like os.exit in Lua 5.2 it
// also takes true (success) and false (failure).
func (h *host) osExit(L *lua.LState) int {
	code := 0
	if b, ok := L.Get(1).(lua.LBool); ok {
		if !b {
			code = 1
		}
	} else {
		code = L.OptInt(1, 0)
	}
	h.exit(code)
	return 0
}

// closeAll closes every UDPIPE instance once, reporting (not raising) an
// error from it.
func (h *host) closeAll() {
	if h.closed {
		return
	}
	h.closed = true
	L := h.L
	closer := L.NewFunction(func(L *lua.LState) int {
		luabind.CloseAll(L)
		return 0
	})
	L.Push(closer)
	if err := L.PCall(0, 0, nil); err != nil {
		fmt.Fprintf(os.Stderr, "%s: while closing connections: %v\n", progname, err)
	}
}

// flush flushes io.stdout and io.stderr, in case the script made them
// buffered with setvbuf.
func (h *host) flush() {
	L := h.L
	for _, f := range h.stdFiles {
		if fn, ok := L.GetField(f, "flush").(*lua.LFunction); ok {
			_ = L.CallByParam(lua.P{Fn: fn, NRet: 0, Protect: true}, f)
		}
	}
}

// finish ends the program in order: connections closed, files flushed,
// the state closed. It returns status for os.Exit.
func (h *host) finish(status int) int {
	h.closeAll()
	h.flush()
	h.L.Close()
	return status
}

// exit finishes the program and exits with status at once.
func (h *host) exit(status int) {
	os.Exit(h.finish(status))
}
