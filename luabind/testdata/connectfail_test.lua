-- A connection attempt that nobody answers ends with onDisconnect after
-- the connect timeout, HELLO having been re-sent every retry interval;
-- messages queued meanwhile are reported unsent.
local T = require 'testlib'
local socket = require 'socket'
local UDPIPE = require 'UDPIPE'

-- A port with nobody behind it: a server started and closed again.
local gone = UDPIPE()
gone:start(0, '127.0.0.1')
local ip, port = gone:getAddress()
gone:close()

local client = UDPIPE()
client:setTimeout(0.005)
client:setRetryInterval(0.05)
client:setConnectTimeout(0.3)
local failed, unsent
function client:onDisconnect(sock, n) failed = sock unsent = n end
local t0 = socket.gettime()
local sock = client:connect(ip, port)
T.eq(client:send('waiting'), true, 'a message queued before the connection is up')
T.stepUntil({ client }, function() return failed end, 'onDisconnect', 3)
local took = socket.gettime() - t0
T.ok(rawequal(failed, sock), 'onDisconnect sock is the one connect returned')
T.eq(unsent, 1, 'the queued message is reported unsent')
T.ok(took >= 0.25 and took < 1.5, ('gave up after %.2f s, connect timeout 0.3 s'):format(took))
-- HELLO at 0 and then every 0.05 s until 0.3 s: about 6 of them.
local hellos = client:getSentPackets()
T.ok(hellos >= 5 and hellos <= 8, ('%d HELLOs in 0.3 s at 0.05 s intervals'):format(hellos))
T.eq(client:getStats(sock).state, 'closed', 'the attempt is over')
