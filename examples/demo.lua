-- demo.lua: a server and three clients in one script. They connect,
-- exchange a few messages, and close; the script ends by itself.
--
--   go run ./cmd/udpipe-lua examples/demo.lua
local UDPIPE = require 'UDPIPE'

local server = UDPIPE()
server:start(0, '127.0.0.1')          -- port 0: any free port
local ip, port = server:getAddress()
print(('server listening on %s:%d'):format(ip, port))

local names = {}                        -- sock -> client name, set on its first message

function server:onConnect(sock, ip, port)
  print(('server: client connected from %s:%d'):format(ip, port))
end

function server:onNewMessage(msg, sock)
  local name = msg:match('^hello from (%S+)')
  if name then
    names[sock] = name
    self:sendAll(name .. ' joined')     -- everyone hears of the newcomer
  else
    self:send('echo: ' .. msg, sock)
  end
end

function server:onClose(sock)
  print(('server: %s closed'):format(names[sock] or tostring(sock)))
end

local clients, closed = {}, 0
for i = 1, 3 do
  local name = 'client' .. i
  local c = UDPIPE()
  c:setTimeout(0)                       -- one loop steps everyone; the server waits
  function c:onConnect(sock)
    print(name .. ': connected')
    self:send('hello from ' .. name)
  end
  local got = 0
  function c:onNewMessage(msg)
    print(name .. ' got: ' .. msg)
    got = got + 1
    if msg == name .. ' joined' then self:send('how are you?') end
    if msg:match('^echo:') then self:close() end
  end
  function c:onClose() print(name .. ': closed') closed = closed + 1 end
  function c:onDisconnect() print(name .. ': could not connect') closed = closed + 1 end
  c:connect(ip, port)
  clients[i] = c
end

local socket = require 'socket'
local deadline = socket.gettime() + 5
while closed < #clients and socket.gettime() < deadline do
  server:step()
  for _, c in ipairs(clients) do c:step() end
end
for _ = 1, 10 do server:step() end      -- let the server hear the last CLOSEs
print(('server sent %d and received %d datagrams'):format(server:getSentPackets(), server:getReceivedPackets()))
server:close()
print('demo done')
