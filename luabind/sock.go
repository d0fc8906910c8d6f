package luabind

import (
	"github.com/udpipe/udpipe/engine"
	lua "github.com/yuin/gopher-lua"
	luar "layeh.com/gopher-luar"
)

// Sock is what a script sees as `sock`: one value per connection, the same
// (rawequal) in every callback, so it can key a table. gopher-luar exposes
// its methods to Lua with a lower-case first letter: sock:getpeername(),
// sock:getsockname(), as LuaSocket names them, and tostring(sock).
type Sock struct {
	conn *engine.Conn
}

// Getpeername returns the ip and port of the other side, as LuaSocket's
// udp:getpeername does.
func (s *Sock) Getpeername() (string, int) {
	ap := s.conn.PeerAddr()
	return ap.Addr().String(), int(ap.Port())
}

// Getsockname returns the ip and port of this side's socket.
func (s *Sock) Getsockname() (string, int) {
	ap := s.conn.LocalAddr()
	return ap.Addr().String(), int(ap.Port())
}

// String describes the connection, for tostring(sock).
func (s *Sock) String() string { return s.conn.String() }

// sock returns the Lua value of c, making it the first time.
func (in *instance) sock(c *engine.Conn) lua.LValue {
	if v, ok := c.Value.(lua.LValue); ok {
		return v
	}
	v := luar.New(in.L, &Sock{conn: c})
	c.Value = v
	return v
}

// connOf returns the connection of a sock value, or nil if v is not one.
func connOf(v lua.LValue) *engine.Conn {
	if ud, ok := v.(*lua.LUserData); ok {
		if s, ok := ud.Value.(*Sock); ok {
			return s.conn
		}
	}
	return nil
}
