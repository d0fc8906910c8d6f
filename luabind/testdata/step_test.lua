-- The documented loops do not spin: step() waits up to the timeout when
-- nothing happens, and returns at once when something arrived. Bounds are
-- loose: this checks behaviour, not speed.
local T = require 'testlib'
local socket = require 'socket'
local UDPIPE = require 'UDPIPE'

local server, client, ssock = T.pair()

-- Idle, with the default timeout (0.01 s): 20 steps take about 0.2 s.
server:setTimeout() -- back to the default
local t0 = socket.gettime()
for _ = 1, 20 do server:step() end
local idle = socket.gettime() - t0
T.ok(idle >= 0.15, ('20 idle steps took %.3f s, want about 0.2 s'):format(idle))
T.ok(idle < 2, ('20 idle steps took %.3f s'):format(idle))

-- setTimeout(0.3): a step with something waiting returns at once.
server:setTimeout(0.3)
local got
function server:onNewMessage(msg) got = msg end
client:send('wake up')
t0 = socket.gettime()
server:step()
local busy = socket.gettime() - t0
T.eq(got, 'wake up', 'message handled in that step')
T.ok(busy < 0.15, ('step with a datagram waiting took %.3f s'):format(busy))

-- step(dt) takes LÖVE's dt and ignores it.
server:setTimeout(0)
server:step(0.016)

-- start's and connect's timeout argument sets the step timeout too.
local s2 = UDPIPE()
s2:start(0, '127.0.0.1', 0.05)
t0 = socket.gettime()
s2:step()
local waited = socket.gettime() - t0
T.ok(waited >= 0.04 and waited < 1, ('start(..., 0.05) then step waited %.3f s'):format(waited))
s2:close()
server:close()
