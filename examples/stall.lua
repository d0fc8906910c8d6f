-- stall.lua: what a stall looks like, and the recovery. A client and a
-- server in one script; the client's network blacks out for 4 seconds
-- (a simulated outage: longer than the stall timeout of 3 s, shorter
-- than the disconnect timeout of 10 s). Messages sent meanwhile wait in
-- the queue and arrive, in order, when the network is back.
--
--   udpipe-lua examples/stall.lua
local UDPIPE = require 'UDPIPE'
local socket = require 'socket'

local server, client = UDPIPE(), UDPIPE()
server:setTimeout(0) client:setTimeout(0)
server:start(0, '127.0.0.1')

local t0 = socket.gettime()
local function say(...) print(('[%4.1f s] '):format(socket.gettime() - t0) .. string.format(...)) end

function server:onNewMessage(msg) say('server got %q', msg) end

local connected, recovered = false, false
function client:onConnect() connected = true say('client connected') end
function client:onStalled(sock)
  say('client: stalled (nothing heard for 3 s); send() queues now')
end
function client:onUnstalled(sock)
  say('client: unstalled; the queued messages go out first')
  recovered = true
end

client:connect(server:getAddress())
while not connected do server:step() client:step() end

say('blackout for 4 s')
client:blackout(4)
local sent, done = 0, nil
while not done do
  server:step() client:step()
  socket.sleep(0.005)
  local now = socket.gettime() - t0
  if now > 3.3 and sent < 3 then
    sent = sent + 1
    client:send('sent during the stall #' .. sent)
    say('client queued message #%d', sent)
  end
  if recovered and not done then
    client:send('sent after the recovery')
    done = socket.gettime() + 0.2
  end
end
while socket.gettime() < done do server:step() client:step() end
client:close()
server:close()
say('done')
