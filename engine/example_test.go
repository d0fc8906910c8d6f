package engine_test

import (
	"fmt"
	"log"
	"time"

	"github.com/udpipe/udpipe/engine"
)

// A server that answers every message, and a client that sends one and
// prints the reply, both driven by Step on one goroutine.
func Example() {
	server := engine.New(engine.Config{}, func(ev *engine.Event) {
		if ev.Kind == engine.EventNewMessage {
			ev.Conn.Send(append([]byte("Reply from server: "), ev.Data...))
		}
	})
	if err := server.Listen("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	defer server.Close()

	done := false
	client := engine.New(engine.Config{}, func(ev *engine.Event) {
		switch ev.Kind {
		case engine.EventConnect:
			ev.Conn.Send([]byte("HelloWorld"))
		case engine.EventNewMessage:
			fmt.Printf("Got message: %s\n", ev.Data)
			done = true
		}
	})
	defer client.Close()
	if _, err := client.Connect(server.Addr().String()); err != nil {
		log.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !done && time.Now().Before(deadline); {
		server.Step(time.Millisecond)
		client.Step(time.Millisecond)
	}
	// Output: Got message: Reply from server: HelloWorld
}

// A server that tells every client of a newcomer, with the clients it
// has; Stats and Conns tell what the server holds.
func ExampleEndpoint_Listen() {
	server := engine.New(engine.Config{MaxClients: 100}, func(ev *engine.Event) {
		if ev.Kind == engine.EventConnect {
			for _, c := range ev.Conn.Endpoint().Conns() {
				c.Send([]byte("someone joined"))
			}
		}
	})
	if err := server.Listen("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	defer server.Close()
	fmt.Println(server.Addr().Addr(), server.Stats().Clients)
	// Output: 127.0.0.1 0
}

// A client whose timers run on a manual clock: the stall timeout passes
// without waiting for it.
func ExampleManualClock() {
	clock := &engine.ManualClock{}
	server := engine.New(engine.Config{Clock: clock}, nil)
	if err := server.Listen("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	defer server.Close()
	var events []engine.EventKind
	client := engine.New(engine.Config{Clock: clock}, func(ev *engine.Event) {
		events = append(events, ev.Kind)
	})
	defer client.Close()
	conn, err := client.Connect(server.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	for conn.State() != engine.StateConnected {
		server.Step(time.Millisecond)
		client.Step(time.Millisecond)
	}
	// The server is not stepped for 4 s: the client stalls.
	for i := 0; i < 4; i++ {
		clock.Advance(time.Second)
		client.Step(0)
	}
	fmt.Println(events, conn.Stalled())
	// Output: [Connecting Connect Stalled] true
}
