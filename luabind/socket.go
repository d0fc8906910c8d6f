package luabind

import (
	"time"

	lua "github.com/yuin/gopher-lua"
)

// sleepSlice is the longest stretch socket.sleep waits without checking
// whether the script has been interrupted.
const sleepSlice = 10 * time.Millisecond

// maxSleep caps socket.sleep so that huge or infinite arguments do not
// overflow time.Duration; the wait stays interruptible throughout.
const maxSleep = 100 * 365 * 24 * time.Hour

// loadSocket opens the LuaSocket-like "socket" module: gettime and sleep.
// Like LuaSocket under Lua 5.1 it also sets the global "socket", so scripts
// that only write `require "socket"` find it.
func loadSocket(L *lua.LState) int {
	mod := L.SetFuncs(L.NewTable(), map[string]lua.LGFunction{
		"gettime": socketGettime,
		"sleep":   socketSleep,
	})
	L.SetGlobal("socket", mod)
	L.Push(mod)
	return 1
}

// socketGettime implements socket.gettime(): the wall clock in seconds since
// the Unix epoch, as a float with sub-microsecond resolution.
func socketGettime(L *lua.LState) int {
	L.Push(lua.LNumber(gettime()))
	return 1
}

// gettime returns the wall clock in seconds since the Unix epoch, as
// socket.gettime() does.
func gettime() float64 {
	return float64(time.Now().UnixNano()) / 1e9
}

// socketSleep implements socket.sleep(s): it waits s seconds (a
// non-positive s returns at once). The wait is cut into short slices and
// raises a Lua error as soon as the state is interrupted.
func socketSleep(L *lua.LState) int {
	secs := float64(L.CheckNumber(1))
	if !(secs > 0) { // also catches NaN
		return 0
	}
	d := maxSleep
	if secs < maxSleep.Seconds() {
		d = time.Duration(secs * float64(time.Second))
	}
	deadline := time.Now().Add(d)
	for {
		if why, ok := interrupted(L); ok {
			L.RaiseError("%s", why)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return 0
		}
		time.Sleep(min(left, sleepSlice))
	}
}
