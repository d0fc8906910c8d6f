package main

import (
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	lua "github.com/yuin/gopher-lua"

	"github.com/udpipe/udpipe/luabind"
)

// signals turns SIGINT and SIGTERM into an interruption of the script: the
// first one makes the next step() or socket.sleep() raise an error, which
// the host turns into an orderly exit; a second one exits at once.
type signals struct {
	L      *lua.LState
	status atomic.Int32  // exit status of the first signal, 0 before
	notify chan struct{} // receives once the first signal came
}

func newSignals(L *lua.LState) *signals {
	return &signals{L: L, notify: make(chan struct{}, 1)}
}

// exitStatus is the conventional status for dying of sig: 128 + its number.
func exitStatus(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 1
}

// watchSignals starts the goroutine that handles SIGINT and SIGTERM.
func (h *host) watchSignals() {
	s := h.sig
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		for sig := range ch {
			status := int32(exitStatus(sig))
			if !s.status.CompareAndSwap(0, status) {
				os.Exit(int(status)) // second signal: no more waiting
			}
			luabind.Interrupt(s.L, "interrupted")
			s.notify <- struct{}{}
		}
	}()
}

// code is the exit status of the signal received, 0 if none came.
func (s *signals) code() int {
	return int(s.status.Load())
}
