//go:build !linux

package main

import "os"

// isTerminal tells whether f is a terminal. Off Linux it settles for "a
// character device", which also counts /dev/null.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
