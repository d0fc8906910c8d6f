-- require 'UDPIPEVERBOSE' is the same class with debugging on: one line
-- per datagram and per change of state; setDebug turns it on and off.
local T = require 'testlib'
local UDPIPE = require 'UDPIPEVERBOSE'
T.ok(UDPIPE.send == require('UDPIPE').send, 'same methods as UDPIPE')

local server, client = T.pair({ class = UDPIPE })
local out = debugOutput()
T.ok(out:find('send [%d.:]+ %-> [%d.:]+ "HELLO "'), 'HELLO sent is logged:\n' .. out)
T.ok(out:find('recv [%d.:]+ <%- [%d.:]+ "CONNECTED"'), 'CONNECTED received is logged')
T.ok(out:find(': connected'), 'state change is logged')

local quiet = require('UDPIPE')()
quiet:setTimeout(0)
local before = #debugOutput()
quiet:start(0, '127.0.0.1')
T.eq(#debugOutput(), before, 'plain UDPIPE is quiet')
quiet:close()
T.eq(#debugOutput(), before, 'plain UDPIPE is quiet when closing')
local loud = require('UDPIPE')()
loud:setDebug(true)
loud:start(0, '127.0.0.1')
T.ok(debugOutput():sub(before + 1):find('listening on 127.0.0.1:'), 'setDebug(true) logs')
loud:setDebug(false)
local after = #debugOutput()
loud:close()
T.eq(#debugOutput(), after, 'setDebug(false) is quiet again')
server:close()
