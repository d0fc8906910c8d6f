-- Wrong arguments raise clear errors; runtime failures return nil and a
-- reason; an error raised in a callback goes out of step() with the
-- callback's line, and the instance goes on working.
local T = require 'testlib'
local UDPIPE = require 'UDPIPE'

local server, client, ssock, csock = T.pair()

-- Argument errors raise.
T.raises('string expected', client.send, client, {})
T.raises('udpipe socket expected', server.send, server, 'x', 'not a sock')
T.raises('socket expected', server.send, server, 'x')
T.raises('socket of another UDPIPE instance', server.send, server, 'x', csock)
T.raises('port', server.start, UDPIPE(), 'http')
T.raises('timeout must not be negative', client.setTimeout, client, -1)
T.raises('must be at least 1', client.setQueueLimit, client, 0)
T.raises('must be at least 1', server.setMaxHalfOpen, server, 0)
T.raises('must be at least 0', server.setMaxClients, server, -1)
T.raises('must be a positive number of seconds', client.setStallTimeout, client, 0)

-- Messages the peer would misread, or that cannot fit a datagram, raise.
for _, word in ipairs({ 'PING', 'PONG', 'CLOSE', 'CLOSED', 'CONNECT', 'CONNECTED', 'GO AWAY!', 'HELLO', 'HELLO x', 'CONNECT 1.2.3.4 5' }) do
  T.raises('control word', client.send, client, word)
end
T.raises('larger than 65507', client.send, client, string.rep('x', 65508))
T.eq(client:send(string.rep('x', 65507)), true, 'the largest datagram is fine')
T.eq(client:send(''), true, 'the empty message is fine')
T.eq(client:send(42), true, 'a number is sent as a string, as LuaSocket does')

-- Failing to listen names the address and the reason.
local busy = UDPIPE()
local ip, port = server:getAddress()
local err = T.raises('address already in use', busy.start, busy, port, ip)
T.ok(err:find(ip .. ':' .. port, 1, true), 'error names the address: ' .. err)

-- Take those in before the next part.
local n = 0
function server:onNewMessage() n = n + 1 end
T.stepUntil({server, client}, function() return n == 3 end, 'the three messages above')

-- An error in a callback comes out of step() with the callback's line.
local got = {}
function server:onNewMessage(msg)
  if msg == 'boom' then error('exploded on ' .. msg) end
  table.insert(got, msg)
end
client:send('a') client:send('boom') client:send('b')
-- (caught is a local of this chunk, assigned from a closure after a
-- caught error: FixPcall makes that work as in lua 5.1, see pcall.go.)
local caught
T.stepUntil({server, client}, function()
  local ok, e = pcall(server.step, server)
  if not ok then caught = e end
  return #got == 2
end, 'messages after the error')
T.ok(caught and caught:find('errors_test.lua:%d+: exploded on boom'), 'error has file and line: ' .. tostring(caught))
T.eq(table.concat(got, ','), 'a,b', 'messages around the failing one are all delivered')

-- The instance is consistent afterwards: it still sends and receives.
function server:onNewMessage(msg, sock) self:send('re:' .. msg, sock) end
local reply
function client:onNewMessage(msg) reply = msg end
client:send('still there?')
T.stepUntil({server, client}, function() return reply end, 'reply after the error')
T.eq(reply, 're:still there?')
server:close()
