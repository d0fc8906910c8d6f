-- chat_client.lua: joins the chat room under a name, sends every line
-- typed, prints what the room says. Ends when its input ends.
--
--   udpipe-lua examples/chat_client.lua alice [host] [port]
local UDPIPE = require 'UDPIPE'
local console = require 'udpipe.console' -- reads typed lines without stopping the loop

local name = arg[1] or 'guest'
local host, port = arg[2] or '127.0.0.1', tonumber(arg[3]) or 4321

local client = UDPIPE()
local connected = false

function client:onConnect()
  connected = true
  self:send('/name ' .. name)
end
function client:onNewMessage(msg)
  print(msg)
  io.stdout:flush()
end
function client:onDisconnect() print('* lost the server') os.exit(1) end
function client:onClose() print('* the server closed') os.exit(0) end

client:connect(host, port)
while not (connected and console.closed()) do
  client:step()
  if connected then
    local line = console.readline()
    if line then client:send(line) end
  end
end
-- Input ended: stay a moment to hear the last words, then leave.
local socket = require 'socket'
local stop = socket.gettime() + 0.3
while socket.gettime() < stop do client:step() end
client:close()
