-- Raw LuaSocket UDP echo server: the reference point for issue 4.
--
-- usage: lua5.1|luajit luasocket_echo_server.lua [port] [duration_s] [host] [connected]
--
-- Echoes every datagram back to whoever sent it (receivefrom/sendto on one
-- unconnected socket, as any LuaSocket server that serves several peers
-- must), and exits after duration_s so nothing is left running.
--
-- With a 4th argument `connected`, the socket is connected (setpeername) to
-- the first sender and only that peer is served, with send/receive: LuaSocket
-- then parses no address per datagram, which makes a stricter (faster)
-- reference, comparable to UDPIPE's one-socket-per-client design.

local socket = require 'socket'

local port = tonumber(arg[1]) or 12345
local duration = tonumber(arg[2]) or 60
local host = arg[3] or '127.0.0.1'
local connected = arg[4] == 'connected'

package.path = (arg[0]:match('^(.*[/\\])') or './') .. '?.lua;' .. package.path
local bench = require 'benchlib'

local udp = assert(socket.udp())
assert(udp:setsockname(host, port))
-- A blocking receive with a cap: LuaSocket first tries recvfrom and only
-- polls when nothing is waiting, so under load this costs no extra syscall,
-- and when idle the cap lets us notice the deadline.
udp:settimeout(0.25)

local gettime = socket.gettime
local receivefrom, sendto = udp.receivefrom, udp.sendto
local deadline = gettime() + duration
bench.ready(port)

local n = 0
while true do
  local msg, ip, p = receivefrom(udp)
  if msg then
    sendto(udp, msg, ip, p)
    if connected then
      assert(udp:setpeername(ip, p))
      break
    end
    n = n + 1
    -- Look at the clock only now and then: the deadline is a safety net, not
    -- a measurement, and the echo path should stay as short as possible.
    if n % 4096 == 0 and gettime() > deadline then break end
  elseif ip == 'timeout' then
    if gettime() > deadline then break end
  else
    error('receivefrom: ' .. tostring(ip))
  end
end

if connected then
  local send, receive = udp.send, udp.receive
  while true do
    local msg, err = receive(udp)
    if msg then
      send(udp, msg)
      n = n + 1
      if n % 4096 == 0 and gettime() > deadline then break end
    elseif err == 'timeout' or err == 'connection refused' then
      -- 'connection refused': the client went away; keep serving until the
      -- deadline like the unconnected server does.
      if gettime() > deadline then break end
    else
      error('receive: ' .. tostring(err))
    end
  end
end
udp:close()
