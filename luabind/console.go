package luabind

import (
	"bufio"
	"os"
	"sync"

	lua "github.com/yuin/gopher-lua"
)

// The "udpipe.console" module reads lines from standard input without
// blocking, so that a script can read what its user types and keep
// stepping its connections meanwhile (io.read would stop the loop, and
// pings with it). It is an addition: the original library has no such
// thing, and a LÖVE game reads its keyboard through LÖVE.
//
//	local console = require 'udpipe.console'
//	local line = console.readline()   -- a line, or nil if none is ready
//	if console.closed() then ... end  -- stdin ended and every line was read

// console reads standard input on a goroutine of its own, started by the
// first readline, because a read from a terminal or a pipe cannot be
// made to wait with a timeout. It lives as long as the process: standard
// input is the process's, not an instance's.
type console struct {
	once  sync.Once
	lines chan string
	ended bool // the channel was found closed (read by the Lua goroutine only)
}

var stdinConsole = &console{}

func (c *console) start() {
	c.once.Do(func() {
		c.lines = make(chan string, 64)
		go func() {
			sc := bufio.NewScanner(os.Stdin)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				c.lines <- sc.Text()
			}
			close(c.lines)
		}()
	})
}

func loadConsole(L *lua.LState) int {
	mod := L.SetFuncs(L.NewTable(), map[string]lua.LGFunction{
		"readline": consoleReadline,
		"closed":   consoleClosed,
	})
	L.Push(mod)
	return 1
}

// readline() returns the next line typed, without its newline, or nil when
// none is ready yet (or standard input has ended).
func consoleReadline(L *lua.LState) int {
	stdinConsole.start()
	select {
	case line, ok := <-stdinConsole.lines:
		if ok {
			L.Push(lua.LString(line))
			return 1
		}
		stdinConsole.ended = true
	default:
	}
	L.Push(lua.LNil)
	return 1
}

// closed() reports whether standard input has ended and every line was read.
func consoleClosed(L *lua.LState) int {
	L.Push(lua.LBool(stdinConsole.ended))
	return 1
}
