package engine

// stateChanged completes fakeTransport (conn_test.go) for the transport
// interface; the state machine tests read c.State() directly.
func (f *fakeTransport) stateChanged(c *Conn, from State) {}
