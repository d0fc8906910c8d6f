package luabind

import (
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// gopher-lua v1.1.2 mishandles upvalues when pcall catches an error
// (yuin/gopher-lua#448): it closes the upvalues of every function on the
// stack, not only of those the error unwinds, so that after a caught
// error a closure that assigns to a local of an enclosing function no
// longer changes the variable that function sees:
//
//	local count = 0
//	local function bump() count = count + 1 end
//	pcall(function() bump() error('x') end)
//	bump()
//	print(count) --> 2 in lua 5.1; 1 in gopher-lua
//
// Scripts that catch errors from step() with pcall (and keep their state
// in locals) would go wrong in ways that are hard to see. FixPcall
// replaces pcall with one that runs the function in a coroutine: an error
// there unwinds only the coroutine's own stack, so only its upvalues are
// closed, as in lua 5.1. A yield inside passes through to the caller's
// coroutine (lua 5.1 refuses to yield across pcall; 5.2 and later allow
// it). The cost is a coroutine per pcall: about 4 µs with a state made
// with a small registry that grows (as udpipe-lua makes its state, see
// cmd/udpipe-lua), 15 µs with gopher-lua's default options.
const safePcall = `
local create, resume, status, yield, running = coroutine.create, coroutine.resume, coroutine.status, coroutine.yield, coroutine.running
local type, getmetatable, gsub = type, debug.getmetatable, string.gsub
local function finish(co, ok, ...)
  if ok and status(co) == 'suspended' then
    -- The function yielded: pass it on to whoever runs us.
    if not running() then return false, 'attempt to yield from outside a coroutine' end
    return finish(co, resume(co, yield(...)))
  end
  if not ok and type(...) == 'string' then
    -- A Go function called straight from pcall (error, string.rep, ...)
    -- names its caller's position in its message: that is our wrapper
    -- below, where lua 5.1 names none. Take it out.
    return false, (gsub((...), '^udpipe%-pcall:%d+: ', '', 1))
  end
  return ok, ...
end
pcall = function(f, ...)
  if type(f) ~= 'function' then
    local mt = getmetatable(f)
    if not (mt and type(mt.__call) == 'function') then
      return false, 'attempt to call a ' .. type(f) .. ' value'
    end
  end
  -- Always through a Lua function: gopher-lua's coroutines do not run a
  -- Go function as their body.
  local co = create(function(...) return f(...) end)
  return finish(co, resume(co, ...))
end
`

// FixPcall replaces the global pcall of L with one that keeps closures
// and their enclosing functions sharing their variables after a caught
// error, as lua 5.1 does (see safePcall). udpipe-lua calls it; a Go
// program that embeds the binding may.
func FixPcall(L *lua.LState) error {
	fn, err := L.Load(strings.NewReader(safePcall), "udpipe-pcall")
	if err != nil {
		return err
	}
	L.Push(fn)
	return L.PCall(0, 0, nil)
}
