-- Several servers and clients in one script work side by side, and the
-- counters count every datagram, control and data.
local T = require 'testlib'
local UDPIPE = require 'UDPIPE'

local servers, clients, all = {}, {}, {}
for i = 1, 2 do
  local s = UDPIPE() s:setTimeout(0) s:start(0, '127.0.0.1')
  function s:onNewMessage(msg, sock) self:send('server' .. i .. ':' .. msg, sock) end
  servers[i] = s table.insert(all, s)
end
local replies = {}
for i = 1, 4 do
  local c = UDPIPE() c:setTimeout(0)
  local target = servers[(i - 1) % 2 + 1]
  function c:onConnect() self:send('client' .. i) end
  function c:onNewMessage(msg) replies[i] = msg end
  c:connect(target:getAddress())
  clients[i] = c table.insert(all, c)
end
T.stepUntil(all, function() return #replies == 4 and replies[1] and replies[2] and replies[3] and replies[4] end, 'replies')
T.eq(replies[1], 'server1:client1') T.eq(replies[2], 'server2:client2')
T.eq(replies[3], 'server1:client3') T.eq(replies[4], 'server2:client4')
T.eq(#servers[1]:getClients(), 2, 'server1 clients') T.eq(#servers[2]:getClients(), 2, 'server2 clients')

-- Client 1 sent HELLO, CONNECT and one message; it received CONNECT <ip>
-- <port>, CONNECTED and one reply.
T.eq(clients[1]:getSentPackets(), 3, 'client sent') T.eq(clients[1]:getReceivedPackets(), 3, 'client received')
-- Server 1, for two clients: received 2 x (HELLO, CONNECT, message),
-- sent 2 x (CONNECT <ip> <port>, CONNECTED, reply).
T.eq(servers[1]:getReceivedPackets(), 6, 'server received') T.eq(servers[1]:getSentPackets(), 6, 'server sent')

-- sendAll reaches every client of one server and no other.
local heard = {}
for i, c in ipairs(clients) do function c:onNewMessage(msg) heard[i] = msg end end
T.eq(servers[2]:sendAll('to all of server2'), 2, 'sendAll count')
T.stepUntil(all, function() return heard[2] and heard[4] end, 'sendAll delivery')
for _ = 1, 20 do for _, x in ipairs(all) do x:step() end end
T.eq(heard[1], nil, 'client of server1 heard nothing') T.eq(heard[3], nil)
T.eq(heard[2], 'to all of server2')

-- close() with no argument closes everything: the clients hear of it.
local closed = 0
for _, c in ipairs(clients) do function c:onClose() closed = closed + 1 end end
servers[1]:close() servers[2]:close()
T.stepUntil(clients, function() return closed == 4 end, 'clients see onClose')
