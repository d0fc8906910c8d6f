-- Every callback of the connection's life fires, with the arguments the
-- original documents, and sock is one value throughout.
local T = require 'testlib'
local UDPIPE = require 'UDPIPE'

local server, client = UDPIPE(), UDPIPE()
server:setTimeout(0) client:setTimeout(0)
server:start(0, '127.0.0.1')
local sip, sport = server:getAddress()
T.eq(sip, '127.0.0.1', 'server ip') T.ok(sport > 0, 'server port chosen')

local seen = { server = {}, client = {} }
local function log(side, name, ...) table.insert(seen[side], { name = name, n = select('#', ...), ... }) end

function server:onNewClient(msg, ip, port, ipc, portc) log('server', 'onNewClient', msg, ip, port, ipc, portc) end
function server:onConnect(sock, ip, port) log('server', 'onConnect', sock, ip, port) end
function server:onNewMessage(msg, sock) log('server', 'onNewMessage', msg, sock) self:send('re:' .. msg, sock) end
function server:onPing(sock) log('server', 'onPing', sock) end
function server:onPong(sock) log('server', 'onPong', sock) end
function server:onClose(sock) log('server', 'onClose', sock) end

function client:onConnecting(sock, ip, port) log('client', 'onConnecting', sock, ip, port) end
function client:onConnect(sock, ip, port) log('client', 'onConnect', sock, ip, port) self:send('hi') end
function client:onNewMessage(msg, sock) log('client', 'onNewMessage', msg, sock) end
function client:onPing(sock) log('client', 'onPing', sock) end
function client:onPong(sock) log('client', 'onPong', sock) end
function client:onClose(sock) log('client', 'onClose', sock) end

local csock = client:connect(sip, sport)
T.ok(csock, 'connect returns the sock')
T.stepUntil({server, client}, function() return #seen.client >= 3 end, 'client reply')

-- The handshake, server side.
local nc = seen.server[1]
T.eq(nc.name, 'onNewClient', 'first server event')
T.eq(nc[1], 'HELLO ', 'onNewClient msg is the HELLO')
local cip, cport = csock:getsockname()
T.eq(nc[2], '127.0.0.1', 'client ip') T.eq(nc[3], cport, 'client port')
T.eq(nc[4], '127.0.0.1', 'ipc') T.ok(nc[5] > 0 and nc[5] ~= sport, 'portc is a new port')
local sc = seen.server[2]
T.eq(sc.name, 'onConnect', 'second server event')
local ssock = sc[1]
T.eq(sc[2], '127.0.0.1', 'onConnect ip') T.eq(sc[3], cport, 'onConnect port')
local pip, pport = ssock:getpeername()
T.eq(pport, cport, 'server sock peer is the client')
local _, sockport = ssock:getsockname()
T.eq(sockport, nc[5], 'server sock is the data socket offered')

-- The handshake, client side.
local cc = seen.client[1]
T.eq(cc.name, 'onConnecting', 'first client event')
T.ok(rawequal(cc[1], csock), 'onConnecting sock is the one connect returned')
T.eq(cc[2], '127.0.0.1', 'onConnecting ip') T.eq(cc[3], nc[5], 'onConnecting port is the data socket')
local cn = seen.client[2]
T.eq(cn.name, 'onConnect', 'second client event')
T.ok(rawequal(cn[1], csock), 'onConnect sock')
T.eq(cn[3], nc[5], 'client onConnect port is the data socket')
local _, peerport = csock:getpeername()
T.eq(peerport, nc[5], 'client sock peer is the data socket')

-- Messages: the same sock value in every callback, usable as a key.
T.eq(seen.server[3].name, 'onNewMessage') T.eq(seen.server[3][1], 'hi')
T.ok(rawequal(seen.server[3][2], ssock), 'server onNewMessage sock is the onConnect sock')
T.eq(seen.client[3][1], 're:hi') T.ok(rawequal(seen.client[3][2], csock), 'client onNewMessage sock')
local byKey = { [ssock] = 'the client' }
T.eq(byKey[seen.server[3][2]], 'the client', 'sock as a table key')
T.ok(tostring(csock):find('127.0.0.1:' .. nc[5], 1, true), 'tostring(sock) names the peer: ' .. tostring(csock))

-- ping: both directions.
local function count(side, name)
  local n = 0
  for _, e in ipairs(seen[side]) do if e.name == name then n = n + 1 end end
  return n
end
client:ping()
T.stepUntil({server, client}, function() return count('client', 'onPong') == 1 end, 'client onPong')
T.eq(count('server', 'onPing'), 1, 'server onPing')
server:ping(ssock)
T.stepUntil({server, client}, function() return count('server', 'onPong') == 1 end, 'server onPong')
T.eq(count('client', 'onPing'), 1, 'client onPing')
server:ping() -- every client
T.stepUntil({server, client}, function() return count('server', 'onPong') == 2 end, 'server onPong after ping()')
T.ok(client:getStats().sent > 0, 'instance stats')
T.ok(client:getStats(csock).rtt > 0, 'rtt measured')

-- close from the client: onClose on both sides, with the same socks.
client:close(csock)
T.stepUntil({server, client}, function() return count('client', 'onClose') == 1 and count('server', 'onClose') == 1 end, 'onClose')
for _, e in ipairs(seen.server) do if e.name == 'onClose' then T.ok(rawequal(e[1], ssock), 'server onClose sock') end end
for _, e in ipairs(seen.client) do if e.name == 'onClose' then T.ok(rawequal(e[1], csock), 'client onClose sock') end end
T.eq(client:send('late'), nil, 'send after close fails')
server:close()
