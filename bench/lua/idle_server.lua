-- Idle check for issue 4: the documented server loop, with an exit.
--
-- usage: udpipe-lua idle_server.lua [port] [duration_s] [host]
--
-- Same shape as the documented example server: start, reply in
-- onNewMessage, `while true do server:step() end` - except the loop ends
-- after duration_s (socket.gettime) so the check leaves nothing running.
-- The harness measures this process's CPU time while a client is connected
-- and idle; the target is at most 2 % of a core.

local UDPIPE = require 'UDPIPE'
local socket = require 'socket'

local port = tonumber(arg[1]) or 1234
local duration = tonumber(arg[2]) or 20
local host = arg[3] or '127.0.0.1'

local server = UDPIPE()
server:start(port, host)

function server:onNewMessage(msg, sock)
  self:send('Reply from server: ' .. msg, sock)
end

io.stdout:write('READY ' .. port .. '\n')
io.stdout:flush()

local deadline = socket.gettime() + duration
while socket.gettime() < deadline do
  server:step()
end
server:close()
