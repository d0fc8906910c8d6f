-- Idle check for issue 4: the documented client loop, with an exit.
--
-- usage: udpipe-lua idle_client.lua [port] [duration_s] [host]
--
-- Same shape as the documented example client: connect, send "HelloWorld"
-- in onConnect, then `while true do client:step() end` - except the loop
-- ends after duration_s (socket.gettime). It prints CONNECTED when the
-- handshake is done so the harness starts measuring CPU only from then on.

local UDPIPE = require 'UDPIPE'
local socket = require 'socket'

local port = tonumber(arg[1]) or 1234
local duration = tonumber(arg[2]) or 20
local host = arg[3] or '127.0.0.1'

local client = UDPIPE()
client:connect(host, port)

function client:onConnect(sock)
  self:send('HelloWorld')
  io.stdout:write('CONNECTED\n')
  io.stdout:flush()
end

function client:onNewMessage(msg)
  io.stdout:write('Got message: ' .. msg .. '\n')
  io.stdout:flush()
end

local deadline = socket.gettime() + duration
while socket.gettime() < deadline do
  client:step()
end
client:close()
