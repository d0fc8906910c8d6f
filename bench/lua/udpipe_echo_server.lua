-- UDPIPE echo server for the issue 4 benchmark, run on udpipe-lua.
--
-- usage: udpipe-lua udpipe_echo_server.lua [port] [duration_s] [host]
--
-- The documented server shape: onNewMessage sends the message back on the
-- connection it came from, and the script just loops on step(). The loop
-- also ends after duration_s (checked with socket.gettime, which udpipe-lua
-- provides) so a benchmark never leaves a server running.

local UDPIPE = require 'UDPIPE'
local socket = require 'socket'

local port = tonumber(arg[1]) or 12345
local duration = tonumber(arg[2]) or 60
local host = arg[3] or '127.0.0.1'

package.path = (arg[0]:match('^(.*[/\\])') or './') .. '?.lua;' .. package.path
local bench = require 'benchlib'

local server = UDPIPE()
server:start(port, host)

function server:onNewMessage(msg, sock)
  self:send(msg, sock)
end

bench.ready(port)

local gettime = socket.gettime
local deadline = gettime() + duration
while gettime() < deadline do
  server:step()
end

-- close() sends CLOSE to every client; step a little so it goes out and the
-- CLOSED answers are taken in.
server:close()
local stop = gettime() + 0.2
while gettime() < stop do
  server:step()
end
