// Package luasrc holds the Lua face of udpipe, UDPIPE.lua and
// UDPIPEVERBOSE.lua, embedded so that the host binary needs no files
// beside it.
package luasrc

import _ "embed"

// UDPIPE is the source of UDPIPE.lua: the class scripts get from
// require 'UDPIPE'.
//
//go:embed UDPIPE.lua
var UDPIPE string

// UDPIPEVERBOSE is the source of UDPIPEVERBOSE.lua: the same class with
// debugging output on.
//
//go:embed UDPIPEVERBOSE.lua
var UDPIPEVERBOSE string
