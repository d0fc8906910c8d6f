-- Raw LuaSocket UDP echo client: the reference point for issue 4.
--
-- usage: lua5.1|luajit luasocket_echo_client.lua [port] [inflight] [duration_s] [host]
--
-- Keeps `inflight` 64-byte messages in flight (32 for throughput, 1 for
-- ping-pong latency): every reply is timed and immediately replaced by a new
-- message in the same slot. After duration_s it prints
--   RESULT rtps=<round trips/s> p50_us=<> p99_us=<> ...
-- It is written to be as fast as LuaSocket allows: a connected socket (so no
-- address is parsed per datagram), methods cached in locals, prebuilt
-- payloads, one clock read per round trip, and a blocking receive (settimeout)
-- that sleeps in the kernel instead of spinning.

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

local udp = assert(socket.udp())
assert(udp:setpeername(host, port))
udp:settimeout(LOST_AFTER / 2)

local gettime = socket.gettime
local send, receive = udp.send, udp.receive
local decode, record = bench.decode, bench.record

local payloads, gens, sent = {}, {}, {}
for i = 1, inflight do
  gens[i] = 0
  payloads[i] = bench.payload(i, 0)
end
local hist = bench.newhist()
local count, resent = 0, 0

-- resendLost re-sends, with a new generation, every slot whose reply is
-- overdue. Cold path: runs only on a receive timeout or every few thousand
-- replies.
local function resendLost(now)
  for i = 1, inflight do
    if now - sent[i] > LOST_AFTER then
      gens[i] = (gens[i] + 1) % 256
      payloads[i] = bench.payload(i, gens[i])
      sent[i] = now
      send(udp, payloads[i])
      resent = resent + 1
    end
  end
end

local t0 = gettime()
local deadline = t0 + duration
for i = 1, inflight do
  sent[i] = gettime()
  -- No assert: a send can report an ICMP error left over from an earlier
  -- run on this port; the slot is then simply re-sent as lost.
  send(udp, payloads[i])
end

local t = t0
while true do
  local msg, err = receive(udp)
  t = gettime()
  if msg then
    local slot, gen = decode(msg)
    if slot and gen == gens[slot] then
      record(hist, t - sent[slot])
      count = count + 1
      if t >= deadline then break end
      sent[slot] = t
      send(udp, payloads[slot])
      if count % 8192 == 0 then resendLost(t) end
    end
  elseif err == 'timeout' or err == 'connection refused' then
    -- 'connection refused': an ICMP error from a server that is not up yet
    -- or just went away; treat it like a timeout and retry.
    if t >= deadline then break end
    resendLost(t)
  else
    error('receive: ' .. tostring(err))
  end
end

bench.result(count, t - t0, hist, inflight, resent)
udp:close()
