-- Stall, recovery and disconnect on the real clock, with short timings.
local T = require 'testlib'
local socket = require 'socket'

local server, client, ssock, csock = T.pair({ setup = function(server, client)
  for _, x in ipairs({ server, client }) do
    x:setPingInterval(0.05) x:setStallTimeout(0.15) x:setDisconnectTimeout(0.6)
  end
end })
local events, got = {}, {}
function client:onStalled() table.insert(events, 'stalled') end
function client:onUnstalled() table.insert(events, 'unstalled') end
function server:onNewMessage(msg) table.insert(got, msg) end

-- The server is not stepped for 0.3 s: the client stalls.
local t0 = socket.gettime()
while socket.gettime() - t0 < 0.3 do client:step() end
T.eq(table.concat(events, ','), 'stalled', 'stalled after 0.3 s of silence')
client:send('q1') client:send('q2')
T.stepUntil({ server, client }, function() return #events == 2 end, 'unstall')
client:send('after')
T.stepUntil({ server, client }, function() return #got == 3 end, 'messages')
T.eq(table.concat(got, ','), 'q1,q2,after', 'queue first, in order')

-- Now the server goes away without a word: the client disconnects.
local gone
function client:onDisconnect(sock) gone = sock end
t0 = socket.gettime()
T.stepUntil({ client }, function() return gone end, 'disconnect', 3)
local took = socket.gettime() - t0
T.ok(rawequal(gone, csock), 'onDisconnect sock')
T.ok(took >= 0.4, ('disconnected after %.2f s, timeout 0.6 s'):format(took))
server:close()
