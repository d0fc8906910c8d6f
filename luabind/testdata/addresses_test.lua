-- Where servers listen and what they announce: every interface (the
-- default), a host name, IPv6, and a port given as a string.
local T = require 'testlib'
local UDPIPE = require 'UDPIPE'

local function handshake(server, host, port)
  local client = UDPIPE() client:setTimeout(0)
  local offered, up
  function client:onConnecting(sock, ip, port) offered = { ip, port } end
  function client:onConnect() up = true end
  client:connect(host, port)
  T.stepUntil({ server, client }, function() return up end, 'connect to ' .. host)
  client:close()
  return offered
end

-- start(port) listens on every interface; the client is told the address
-- it reached the server at.
local any = UDPIPE() any:setTimeout(0)
any:start(0)
local ip, port = any:getAddress()
T.eq(ip, '0.0.0.0', 'listening on every interface')
local offered = handshake(any, '127.0.0.1', port)
T.eq(offered[1], '127.0.0.1', 'announced address for a wildcard server')
-- A host name is looked up.
offered = handshake(any, 'localhost', tostring(port))
T.ok(offered[1] == '127.0.0.1' or offered[1] == '::1', 'localhost: ' .. tostring(offered[1]))
any:close()

-- IPv6 on ::1, where the machine has it.
local v6 = UDPIPE() v6:setTimeout(0)
local ok = pcall(v6.start, v6, 0, '::1')
if ok then
  local ip6, port6 = v6:getAddress()
  T.eq(ip6, '::1', 'listening on ::1')
  offered = handshake(v6, '::1', port6)
  T.eq(offered[1], '::1', 'announced IPv6 address')
  v6:close()
end

-- A port out of range is refused before anything is sent.
local c = UDPIPE()
T.raises('port out of range', c.connect, c, '127.0.0.1', 70000)
