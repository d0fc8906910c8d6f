package main

import lua "github.com/yuin/gopher-lua"

// stateOptions are the options of the host's Lua state: a registry that
// starts small and grows, so that the coroutine behind each pcall (see
// luabind.FixPcall) is cheap to make: about 4 µs rather than 15.
var stateOptions = lua.Options{
	RegistrySize:        256,
	RegistryMaxSize:     1 << 22,
	RegistryGrowStep:    256,
	MinimizeStackMemory: true,
}
