package engine

import (
	"testing"
	"time"
)

// BenchmarkEcho measures one round trip through two endpoints on
// loopback: the client keeps 32 messages of 64 bytes in flight, the
// server echoes each. Both are stepped on this goroutine, so the figure
// includes both sides' system calls. Allocations are per round trip.
func BenchmarkEcho(b *testing.B) {
	const inflight = 32
	msg := make([]byte, 64)
	server := New(Config{}, func(ev *Event) {
		if ev.Kind == EventNewMessage {
			ev.Conn.Send(ev.Data)
		}
	})
	if err := server.Listen("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer server.Close()
	received := 0
	connected := false
	client := New(Config{}, func(ev *Event) {
		switch ev.Kind {
		case EventConnect:
			connected = true
		case EventNewMessage:
			received++
			ev.Conn.Send(msg)
		}
	})
	defer client.Close()
	conn, err := client.Connect(server.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); !connected; {
		if time.Now().After(deadline) {
			b.Fatal("no connection")
		}
		server.Step(time.Millisecond)
		client.Step(time.Millisecond)
	}
	for i := 0; i < inflight; i++ {
		conn.Send(msg)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for received < b.N {
		server.Step(time.Millisecond)
		client.Step(time.Millisecond)
	}
}
