-- chat_server.lua: a chat room. Every line a client sends goes to every
-- client, with the sender's name; arrivals and departures are announced.
--
--   udpipe-lua examples/chat_server.lua [port]
--   udpipe-lua examples/chat_client.lua alice [host] [port]
local UDPIPE = require 'UDPIPE'

local port = tonumber(arg[1]) or 4321
local server = UDPIPE()
local names = {}                    -- sock -> name

function server:onNewMessage(msg, sock)
  local name = msg:match('^/name (%S+)$')
  if name then
    names[sock] = name
    self:sendAll('* ' .. name .. ' joined')
    print(name .. ' joined')
  elseif names[sock] then
    self:sendAll(names[sock] .. ': ' .. msg)
  end
end

local function gone(sock, how)
  local name = names[sock]
  if name then
    names[sock] = nil
    server:sendAll('* ' .. name .. ' ' .. how)
    print(name .. ' ' .. how)
  end
end
function server:onClose(sock) gone(sock, 'left') end
function server:onDisconnect(sock) gone(sock, 'timed out') end

server:start(port, '127.0.0.1')
print('chat server on 127.0.0.1:' .. port)
io.stdout:flush()
while true do server:step() end
