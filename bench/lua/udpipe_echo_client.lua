-- UDPIPE echo client for the issue 4 benchmark, run on udpipe-lua.
--
-- usage: udpipe-lua udpipe_echo_client.lua [port] [inflight] [duration_s] [host]
--
-- Same measurement as luasocket_echo_client.lua, written against the
-- documented UDPIPE API: connect, send `inflight` 64-byte messages in
-- onConnect, and in onNewMessage time the reply and send the next message in
-- the same slot. Timing starts at onConnect, so the handshake is not counted.
-- After duration_s it prints the same RESULT line and closes.

local UDPIPE = require 'UDPIPE'
local socket = require 'socket'

local port = tonumber(arg[1]) or 12345
local inflight = tonumber(arg[2]) or 32
local duration = tonumber(arg[3]) or 3
local host = arg[4] or '127.0.0.1'

package.path = (arg[0]:match('^(.*[/\\])') or './') .. '?.lua;' .. package.path
local bench = require 'benchlib'

-- A slot with no reply for this long is considered lost and re-sent, so one
-- dropped datagram cannot silently shrink the number in flight.
local LOST_AFTER = 1.0
-- Give up if the handshake does not complete in this time.
local CONNECT_WITHIN = 10

local gettime = socket.gettime
local decode, record = bench.decode, bench.record

local payloads, gens, sent = {}, {}, {}
for i = 1, inflight do
  gens[i] = 0
  payloads[i] = bench.payload(i, 0)
end
local hist = bench.newhist()
local count, resent = 0, 0
local t0, deadline, tEnd
local closed = false

local client = UDPIPE()

function client:onConnect(sock)
  t0 = gettime()
  deadline = t0 + duration
  for i = 1, inflight do
    sent[i] = gettime()
    assert(self:send(payloads[i]))
  end
end

function client:onNewMessage(msg, sock)
  if tEnd then return end
  local t = gettime()
  local slot, gen = decode(msg)
  if slot and gen == gens[slot] then
    record(hist, t - sent[slot])
    count = count + 1
    if t >= deadline then
      tEnd = t
      return
    end
    sent[slot] = t
    self:send(payloads[slot])
  end
end

function client:onDisconnect(sock)
  io.stderr:write('udpipe_echo_client: disconnected\n')
  closed = true
end

function client:onClose(sock)
  closed = true
end

-- resendLost re-sends, with a new generation, every slot whose reply is
-- overdue. Cold path: at most twice a second.
local function resendLost(now)
  for i = 1, inflight do
    if now - sent[i] > LOST_AFTER then
      gens[i] = (gens[i] + 1) % 256
      payloads[i] = bench.payload(i, gens[i])
      sent[i] = now
      client:send(payloads[i])
      resent = resent + 1
    end
  end
end

client:connect(host, port)

local started = gettime()
local lastScan = started
while not tEnd and not closed do
  client:step()
  local t = gettime()
  if not t0 then
    if t - started > CONNECT_WITHIN then
      error('no connection to ' .. host .. ':' .. port .. ' within ' .. CONNECT_WITHIN .. ' s')
    end
  elseif t >= deadline then
    -- Also end when replies stopped coming: the deadline is checked here,
    -- not only in onNewMessage.
    tEnd = tEnd or t
  elseif t - lastScan > LOST_AFTER / 2 then
    lastScan = t
    resendLost(t)
  end
end

if not t0 then error('connection closed before onConnect') end
tEnd = tEnd or gettime()
bench.result(count, tEnd - t0, hist, inflight, resent)

-- Close properly so the server sees CLOSE, not a timeout.
client:close()
local stop = gettime() + 1
while not closed and gettime() < stop do
  client:step()
end
