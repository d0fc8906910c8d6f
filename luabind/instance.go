package luabind

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/udpipe/udpipe/engine"
	lua "github.com/yuin/gopher-lua"
)

// instance is the Go side of one Lua UDPIPE object.
type instance struct {
	L       *lua.LState
	hs      *hostState
	obj     *lua.LTable // the Lua object: its callbacks are looked up here
	ep      *engine.Endpoint
	timeout time.Duration // the most step() waits
	debug   bool

	// Counters of endpoints this instance used before (close() and a new
	// start() or connect() make a new endpoint).
	pastSent, pastReceived uint64
}

// coreKey is the field of the Lua object that holds its instance.
const coreKey = "_core"

const defaultTimeout = 10 * time.Millisecond

// loadCore is the loader of the "udpipe.core" module: the functions that
// lua/UDPIPE.lua installs as methods. Each takes the Lua object first.
func loadCore(L *lua.LState) int {
	mod := L.SetFuncs(L.NewTable(), map[string]lua.LGFunction{
		"setTimeout":           coreSetTimeout,
		"setDebug":             coreSetDebug,
		"setToken":             coreSetToken,
		"start":                coreStart,
		"connect":              coreConnect,
		"step":                 coreStep,
		"send":                 coreSend,
		"sendAll":              coreSendAll,
		"ping":                 corePing,
		"close":                coreClose,
		"getSentPackets":       coreGetSentPackets,
		"getReceivedPackets":   coreGetReceivedPackets,
		"setMaxClients":        intSetter(0, func(c *engine.Config, n int) { c.MaxClients = n }), // 0: no limit
		"setMaxHalfOpen":       intSetter(1, func(c *engine.Config, n int) { c.MaxHalfOpen = n }),
		"setQueueLimit":        intSetter(1, func(c *engine.Config, n int) { c.QueueLimit = n }),
		"setPingInterval":      durationSetter(func(c *engine.Config, d time.Duration) { c.PingInterval = d }),
		"setStallTimeout":      durationSetter(func(c *engine.Config, d time.Duration) { c.StallTimeout = d }),
		"setDisconnectTimeout": durationSetter(func(c *engine.Config, d time.Duration) { c.DisconnectTimeout = d }),
		"setConnectTimeout":    durationSetter(func(c *engine.Config, d time.Duration) { c.ConnectTimeout = d }),
		"setRetryInterval":     durationSetter(func(c *engine.Config, d time.Duration) { c.RetryInterval = d }),
		"getClients":           coreGetClients,
		"getStats":             coreGetStats,
		"getAddress":           coreGetAddress,
		"setSimulation":        coreSetSimulation,
		"blackout":             coreBlackout,
	})
	L.Push(mod)
	return 1
}

// self returns the instance of the Lua object at argument 1, making it on
// first use.
//
// The instance runs its callbacks on L from now on: the script may call
// step() from a coroutine, and a callback must run on the thread (the
// *lua.LState) that is running, not on the one that made the instance.
func self(L *lua.LState) *instance {
	obj := L.CheckTable(1)
	if ud, ok := obj.RawGetString(coreKey).(*lua.LUserData); ok {
		if inst, ok := ud.Value.(*instance); ok {
			inst.L = L
			return inst
		}
	}
	inst := &instance{L: L, hs: stateOf(L), obj: obj, timeout: defaultTimeout}
	inst.debug = lua.LVAsBool(L.GetField(obj, "debug"))
	inst.newEndpoint()
	ud := L.NewUserData()
	ud.Value = inst
	obj.RawSetString(coreKey, ud)
	return inst
}

// newEndpoint gives the instance a fresh endpoint, keeping the settings
// and counters of the previous one.
func (in *instance) newEndpoint() {
	cfg := engine.Config{Clock: in.hs.clock}
	if in.ep != nil {
		cfg = in.ep.Config()
		st := in.ep.Stats()
		in.pastSent += st.Sent
		in.pastReceived += st.Received
	}
	if in.debug {
		cfg.Debug = in.hs.debugWriter()
	}
	in.ep = engine.New(cfg, in.handle)
	in.hs.instances[in] = struct{}{}
}

// usable returns the endpoint, replacing it if it was closed.
func (in *instance) usable() *engine.Endpoint {
	if in.ep.Closed() {
		in.newEndpoint()
	}
	return in.ep
}

func (in *instance) closeAll() {
	in.ep.Close()
	delete(in.hs.instances, in)
}

func (in *instance) configure(f func(*engine.Config)) {
	cfg := in.ep.Config()
	f(&cfg)
	in.ep.SetConfig(cfg)
}

// seconds converts a Lua number of seconds.
func seconds(n lua.LNumber) time.Duration {
	return time.Duration(float64(n) * float64(time.Second))
}

func optTimeout(L *lua.LState, n int, in *instance) {
	if v := L.Get(n); v != lua.LNil {
		t := L.CheckNumber(n)
		if t < 0 {
			L.ArgError(n, "timeout must not be negative")
		}
		in.timeout = seconds(t)
	}
}

func coreSetTimeout(L *lua.LState) int {
	in := self(L)
	if L.Get(2) == lua.LNil {
		in.timeout = defaultTimeout
		return 0
	}
	optTimeout(L, 2, in)
	return 0
}

func coreSetDebug(L *lua.LState) int {
	in := self(L)
	in.debug = L.ToBool(2)
	in.configure(func(c *engine.Config) {
		c.Debug = nil
		if in.debug {
			c.Debug = in.hs.debugWriter()
		}
	})
	return 0
}

func coreSetToken(L *lua.LState) int {
	in := self(L)
	token := L.OptString(2, "")
	in.configure(func(c *engine.Config) { c.Token = token })
	return 0
}

// intSetter makes a setter of a count that must be at least least.
func intSetter(least int, set func(*engine.Config, int)) lua.LGFunction {
	return func(L *lua.LState) int {
		in := self(L)
		n := L.CheckInt(2)
		if n < least {
			L.ArgError(2, fmt.Sprintf("must be at least %d", least))
		}
		in.configure(func(c *engine.Config) { set(c, n) })
		return 0
	}
}

func durationSetter(set func(*engine.Config, time.Duration)) lua.LGFunction {
	return func(L *lua.LState) int {
		in := self(L)
		t := L.CheckNumber(2)
		if t <= 0 {
			L.ArgError(2, "must be a positive number of seconds")
		}
		in.configure(func(c *engine.Config) { set(c, seconds(t)) })
		return 0
	}
}

// portArg reads a port given as a number or a numeric string.
func portArg(L *lua.LState, n int) int {
	v := L.Get(n)
	var port int
	switch v := v.(type) {
	case lua.LNumber:
		port = int(v)
	case lua.LString:
		p, err := strconv.Atoi(string(v))
		if err != nil {
			L.ArgError(n, "port expected, got "+strconv.Quote(string(v)))
		}
		port = p
	default:
		L.ArgError(n, "port expected, got "+v.Type().String())
	}
	if port < 0 || port > 65535 {
		L.ArgError(n, "port out of range")
	}
	return port
}

// start(port, host, timeout)
func coreStart(L *lua.LState) int {
	in := self(L)
	port := portArg(L, 2)
	host := L.OptString(3, "*")
	optTimeout(L, 4, in)
	if host == "*" {
		host = ""
	}
	if err := in.usable().Listen(net.JoinHostPort(host, strconv.Itoa(port))); err != nil {
		L.RaiseError("start: %v", err)
	}
	return 0
}

// connect(host, port, timeout)
func coreConnect(L *lua.LState) int {
	in := self(L)
	host := L.CheckString(2)
	port := portArg(L, 3)
	optTimeout(L, 4, in)
	c, err := in.usable().Connect(net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		L.RaiseError("connect: %v", err)
	}
	L.Push(in.sock(c))
	return 1
}

// step(dt): dt is accepted, as LÖVE passes it, and not needed: the timers
// run on a monotonic clock.
func coreStep(L *lua.LState) int {
	in := self(L)
	if why := in.hs.interrupt.Load(); why != nil {
		L.RaiseError("%s", *why)
	}
	if in.ep.Closed() {
		return 0 // a closed instance has nothing to do, as in the original
	}
	if err := in.ep.Step(in.timeout); err != nil {
		L.RaiseError("step: %v", err)
	}
	return 0
}

// connArg returns the connection given at argument n, or the client's
// connection when it is omitted on a client.
func (in *instance) connArg(L *lua.LState, n int) *engine.Conn {
	v := L.Get(n)
	if v == lua.LNil {
		if c := in.ep.Client(); c != nil {
			return c
		}
		L.ArgError(n, "socket expected (a server must say which client)")
	}
	c := connOf(v)
	if c == nil {
		L.ArgError(n, "udpipe socket expected, got "+v.Type().String())
	}
	if ep := c.Endpoint(); ep != in.ep && !ep.Closed() {
		// (A sock of this instance's earlier, closed endpoint is fine:
		// it just reports the connection closed.)
		L.ArgError(n, "socket of another UDPIPE instance")
	}
	return c
}

// checkMessage reads the message at argument n; a string or a number, as
// LuaSocket's send takes.
func checkMessage(L *lua.LState, n int) string {
	switch v := L.Get(n).(type) {
	case lua.LString:
		return string(v)
	case lua.LNumber:
		return v.String()
	default:
		L.ArgError(n, "string expected, got "+v.Type().String())
		return ""
	}
}

// sendOne sends msg on c. Mistakes in the message itself raise an error;
// conditions of the connection return nil and a reason, LuaSocket style.
func sendOne(L *lua.LState, fn string, c *engine.Conn, msg string) error {
	err := c.SendString(msg)
	if errors.Is(err, engine.ErrControlWord) || errors.Is(err, engine.ErrTooLarge) {
		L.RaiseError("%s: %v", fn, err)
	}
	return err
}

// send(msg, sock)
func coreSend(L *lua.LState) int {
	in := self(L)
	msg := checkMessage(L, 2)
	c := in.connArg(L, 3)
	if err := sendOne(L, "send", c, msg); err != nil {
		L.Push(lua.LNil)
		L.Push(lua.LString(err.Error()))
		return 2
	}
	L.Push(lua.LTrue)
	return 1
}

// sendAll(msg): returns the number of connections it was sent (or queued) on.
func coreSendAll(L *lua.LState) int {
	in := self(L)
	msg := checkMessage(L, 2)
	n := 0
	for _, c := range in.ep.Conns() {
		if sendOne(L, "sendAll", c, msg) == nil {
			n++
		}
	}
	L.Push(lua.LNumber(n))
	return 1
}

// ping(sock): without sock, the server pings every client; a client its server.
func corePing(L *lua.LState) int {
	in := self(L)
	if L.Get(2) != lua.LNil {
		in.connArg(L, 2).Ping()
		return 0
	}
	for _, c := range in.ep.Conns() {
		c.Ping()
	}
	return 0
}

// close(skt): skt closes one connection; nothing closes everything.
func coreClose(L *lua.LState) int {
	in := self(L)
	if L.Get(2) != lua.LNil {
		in.connArg(L, 2).Close()
		return 0
	}
	in.closeAll()
	return 0
}

func coreGetSentPackets(L *lua.LState) int {
	in := self(L)
	L.Push(lua.LNumber(in.pastSent + in.ep.Stats().Sent))
	return 1
}

func coreGetReceivedPackets(L *lua.LState) int {
	in := self(L)
	L.Push(lua.LNumber(in.pastReceived + in.ep.Stats().Received))
	return 1
}

func coreGetClients(L *lua.LState) int {
	in := self(L)
	t := L.NewTable()
	for _, c := range in.ep.Conns() {
		t.Append(in.sock(c))
	}
	L.Push(t)
	return 1
}

func coreGetStats(L *lua.LState) int {
	in := self(L)
	t := L.NewTable()
	if L.Get(2) != lua.LNil {
		c := in.connArg(L, 2)
		st := c.Stats()
		t.RawSetString("sent", lua.LNumber(st.Sent))
		t.RawSetString("received", lua.LNumber(st.Received))
		t.RawSetString("dropped", lua.LNumber(st.Dropped))
		t.RawSetString("queued", lua.LNumber(st.Queued))
		t.RawSetString("rtt", lua.LNumber(st.RTT.Seconds()))
		t.RawSetString("stalled", lua.LBool(c.Stalled()))
		t.RawSetString("state", lua.LString(c.State().String()))
	} else {
		st := in.ep.Stats()
		t.RawSetString("sent", lua.LNumber(in.pastSent+st.Sent))
		t.RawSetString("received", lua.LNumber(in.pastReceived+st.Received))
		t.RawSetString("dropped", lua.LNumber(st.Dropped))
		t.RawSetString("sendErrors", lua.LNumber(st.SendErrors))
		t.RawSetString("clients", lua.LNumber(st.Clients))
		t.RawSetString("halfOpen", lua.LNumber(st.HalfOpen))
		t.RawSetString("rateLimited", lua.LNumber(st.RateLimited))
		t.RawSetString("evicted", lua.LNumber(st.Evicted))
		t.RawSetString("simLost", lua.LNumber(st.SimLost))
	}
	L.Push(t)
	return 1
}

func coreGetAddress(L *lua.LState) int {
	in := self(L)
	ap := in.ep.Addr()
	if !ap.IsValid() {
		L.Push(lua.LNil)
		L.Push(lua.LString("not started"))
		return 2
	}
	return pushAddr(L, ap)
}

// pushAddr pushes ip, port.
func pushAddr(L *lua.LState, ap netip.AddrPort) int {
	L.Push(lua.LString(ap.Addr().String()))
	L.Push(lua.LNumber(ap.Port()))
	return 2
}

// setSimulation{loss=, duplicate=, delay=, jitter=, seed=}: a simulated
// bad network (times in seconds, chances from 0 to 1); nil or no argument
// turns it off.
func coreSetSimulation(L *lua.LState) int {
	in := self(L)
	if L.Get(2) == lua.LNil {
		in.ep.SetSimulation(nil)
		return 0
	}
	t := L.CheckTable(2)
	chance := func(name string) float64 {
		v := t.RawGetString(name)
		if v == lua.LNil {
			return 0
		}
		n, ok := v.(lua.LNumber)
		if !ok || n < 0 || n > 1 {
			L.ArgError(2, fmt.Sprintf("%s must be a number from 0 to 1", name))
		}
		return float64(n)
	}
	duration := func(name string) time.Duration {
		v := t.RawGetString(name)
		if v == lua.LNil {
			return 0
		}
		n, ok := v.(lua.LNumber)
		if !ok || n < 0 {
			L.ArgError(2, fmt.Sprintf("%s must be a number of seconds, not negative", name))
		}
		return seconds(n)
	}
	sim := engine.Simulation{
		Loss:      chance("loss"),
		Duplicate: chance("duplicate"),
		Delay:     duration("delay"),
		Jitter:    duration("jitter"),
	}
	if v, ok := t.RawGetString("seed").(lua.LNumber); ok {
		sim.Seed = uint64(v)
	}
	in.ep.SetSimulation(&sim)
	return 0
}

// blackout(seconds): every datagram sent or received is lost for that long.
func coreBlackout(L *lua.LState) int {
	in := self(L)
	d := L.CheckNumber(2)
	if d < 0 {
		L.ArgError(2, "must not be negative")
	}
	in.ep.Blackout(seconds(d))
	return 0
}
