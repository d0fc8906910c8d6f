package main

import (
	"strings"
	"testing"
)

// pcall behaves as in lua 5.1, where gopher-lua's own does not
// (yuin/gopher-lua#448): after a caught error, closures still share the
// locals of the functions around them.
func TestPcallMatchesLua51(t *testing.T) {
	needLua51(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"p.lua": `
		local count = 0
		local function bump() count = count + 1 end
		for i = 1, 3 do
			print(pcall(function() bump() error('x' .. i) end))
		end
		bump()
		print('count', count)

		local seen
		local function keep(e) seen = e end
		pcall(function() error('first') end)
		local ok, e = pcall(function() error('second') end)
		keep(e)
		print('seen', seen)

		print(pcall(nil))
		print(pcall(42))
		print(pcall(setmetatable({}, {__call = function(self, a) return a * 2 end}), 21))
		print(select('#', pcall(function() return 1, nil, 3 end)))
		print(pcall(function(...) return select('#', ...) end, nil, nil))
		local t = {}
		print(select(2, pcall(error, t)) == t)
		print(pcall(pcall, error, "nested"))
		print(pcall(error, "plain"))
		print(pcall(math.floor, 1.5))
		print(pcall(print, "printed"))
	`})
	want := execute(t, lua51, runOpts{dir: dir}, "p.lua")
	got := execute(t, bin, runOpts{dir: dir}, "p.lua")
	if got.stdout != want.stdout || got.code != want.code {
		t.Errorf("udpipe-lua:\n%s(exit %d)\nlua5.1:\n%s(exit %d)", got.stdout, got.code, want.stdout, want.code)
	}
}

// A yield inside pcall passes through to the coroutine around it (as in
// lua 5.2 and later; lua 5.1 refuses).
func TestPcallPassesYields(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"y.lua": `
		local co = coroutine.wrap(function()
			print('in', pcall(function() return coroutine.yield('out') + 1 end))
		end)
		print(co())
		co(41)
		print(pcall(coroutine.yield, 1))
	`})
	got := execute(t, bin, runOpts{dir: dir}, "y.lua")
	want := "out\nin\ttrue\t42\nfalse\tattempt to yield from outside a coroutine\n"
	if got.stdout != want || got.code != 0 {
		t.Errorf("got:\n%s(exit %d, stderr %s)\nwant:\n%s", got.stdout, got.code, got.stderr, want)
	}
}

// An error raised by a Go function called straight from pcall carries no
// position (as in lua 5.1, where its caller is pcall itself), not the
// position of the wrapper that runs it in a coroutine. (The wording of
// the message itself is gopher-lua's.)
func TestPcallGoFunctionErrorsHaveNoPosition(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"g.lua": `
		print(pcall(string.rep))
		print(pcall(math.floor, "x"))
		print(pcall(error, "plain"))
	`})
	got := execute(t, bin, runOpts{dir: dir}, "g.lua")
	lines := strings.Split(strings.TrimSpace(got.stdout), "\n")
	if len(lines) != 3 || got.code != 0 {
		t.Fatalf("output %q (exit %d, stderr %s)", got.stdout, got.code, got.stderr)
	}
	for _, l := range lines[:2] {
		if !strings.HasPrefix(l, "false\tbad argument #1") {
			t.Errorf("%q: want a bad-argument message without a position", l)
		}
	}
	if lines[2] != "false\tplain" {
		t.Errorf("pcall(error, 'plain') gave %q", lines[2])
	}
}
