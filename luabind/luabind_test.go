package luabind

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/udpipe/udpipe/engine"
	lua "github.com/yuin/gopher-lua"
)

// newState returns a Lua state with the binding installed and testdata/
// on package.path, closed (with every instance) when the test ends.
func newState(t *testing.T) *lua.LState {
	t.Helper()
	L := lua.NewState()
	Install(L)
	if err := FixPcall(L); err != nil {
		t.Fatal(err)
	}
	L.SetField(L.GetField(L.Get(lua.GlobalsIndex), "package"), "path", lua.LString("testdata/?.lua"))
	t.Cleanup(func() {
		CloseAll(L)
		L.Close()
		statesMu.Lock()
		delete(states, L)
		statesMu.Unlock()
	})
	return L
}

// TestLuaScripts runs every testdata/*_test.lua. A script whose first line
// is "-- clock: manual" runs its instances on an engine.ManualClock, which
// it moves with the global advance(seconds).
func TestLuaScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*_test.lua")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Lua test scripts found (%v)", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), "_test.lua"), func(t *testing.T) {
			L := newState(t)
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.HasPrefix(src, []byte("-- clock: manual")) {
				clock := &engine.ManualClock{}
				SetClock(L, clock)
				L.SetGlobal("advance", L.NewFunction(func(L *lua.LState) int {
					clock.Advance(seconds(L.CheckNumber(1)))
					return 0
				}))
			}
			var debug bytes.Buffer
			SetDebugOutput(L, &debug)
			L.SetGlobal("debugOutput", L.NewFunction(func(L *lua.LState) int {
				L.Push(lua.LString(debug.String()))
				return 1
			}))
			if err := L.DoFile(file); err != nil {
				t.Fatal(err)
			}
		})
	}
}
