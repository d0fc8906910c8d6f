-- UDPIPE: connects clients and servers with UDP.
--
-- This is the Lua face of udpipe: the class of the original UDPIPE library,
-- with the same methods and callbacks, over the Go engine (udpipe.core).
--
--   UDPIPE = require 'UDPIPE'
--   server = UDPIPE()
--   function server:onNewMessage(msg, sock) self:send('Reply: '..msg, sock) end
--   server:start(1234, '127.0.0.1')
--   while true do server:step() end
--
-- Callbacks are looked up on the object each time their event happens, so
-- they can be defined on an instance, on UDPIPE itself, or on a subclass.
local core = require 'udpipe.core'

local UDPIPE = {}
UDPIPE.__index = UDPIPE

-- UDPIPE() makes an instance; so does UDPIPE:new(), and so does calling a
-- subclass made with UDPIPE:extend(). An instance made some other way (a
-- table whose metatable leads to UDPIPE) works too: the engine behind it is
-- made on first use.
function UDPIPE:new()
  return setmetatable({}, self)
end

-- extend returns a subclass: callbacks defined on it apply to its instances.
function UDPIPE:extend()
  local class = setmetatable({}, { __index = self, __call = function(c) return c:new() end })
  class.__index = class
  return class
end

setmetatable(UDPIPE, { __call = function(class) return class:new() end })

-- Methods of the original (SPEC.md §2).

-- setTimeout(t): the most one step() waits when nothing happens (default 0.01 s).
UDPIPE.setTimeout = core.setTimeout
-- setDebug(on): one line per datagram and state change on stderr.
UDPIPE.setDebug = core.setDebug
-- setToken(t): the token of the handshake (default '').
UDPIPE.setToken = core.setToken
-- start(port, host, timeout): listen as a server (host defaults to every interface).
UDPIPE.start = core.start
-- connect(host, port, timeout): connect as a client; returns the sock.
UDPIPE.connect = core.connect
-- step(dt): handle what arrived and what is due; waits up to the timeout.
UDPIPE.step = core.step
-- send(msg, sock): true, or nil and a reason. sock may be omitted on a client.
UDPIPE.send = core.send
-- sendAll(msg): send to every connected socket; returns how many.
UDPIPE.sendAll = core.sendAll
-- ping(sock): PING the server (client) or sock, or every client (server).
UDPIPE.ping = core.ping
-- close(skt): close one connection; close() closes everything.
UDPIPE.close = core.close
-- getSentPackets(), getReceivedPackets(): datagrams sent and received.
UDPIPE.getSentPackets = core.getSentPackets
UDPIPE.getReceivedPackets = core.getReceivedPackets

-- Additions (they change nothing of the original's behaviour).

-- Limits and timings, in seconds where they are times.
UDPIPE.setMaxClients = core.setMaxClients
UDPIPE.setMaxHalfOpen = core.setMaxHalfOpen
UDPIPE.setQueueLimit = core.setQueueLimit
UDPIPE.setPingInterval = core.setPingInterval
UDPIPE.setStallTimeout = core.setStallTimeout
UDPIPE.setDisconnectTimeout = core.setDisconnectTimeout
UDPIPE.setConnectTimeout = core.setConnectTimeout
UDPIPE.setRetryInterval = core.setRetryInterval
-- getClients(): a list of the connected socks.
UDPIPE.getClients = core.getClients
-- getStats(sock): a table of counters of sock (rtt, queued, ...), or of
-- the whole instance without sock.
UDPIPE.getStats = core.getStats
-- getAddress(): ip, port of the listening socket (server) or of the
-- client's socket; useful after start(0).
UDPIPE.getAddress = core.getAddress
-- setSimulation{loss=0.2, delay=0.05, jitter=0.01, duplicate=0.01, seed=1}:
-- a simulated bad network between this instance and the real one, for
-- testing scripts; setSimulation(nil) turns it off.
UDPIPE.setSimulation = core.setSimulation
-- blackout(seconds): a simulated outage: nothing goes in or out for that long.
UDPIPE.blackout = core.blackout

-- Callbacks of the original. They do nothing until a script defines them.

-- A HELLO was accepted: ip, port the client, ipc, portc its data socket.
function UDPIPE:onNewClient(msg, ip, port, ipc, portc) end
-- A message arrived on sock.
function UDPIPE:onNewMessage(msg, sock) end
-- Client: connected to the server. Server: a client connected.
function UDPIPE:onConnect(sock, ip, port) end
-- Client: the server offered its data socket at ip, port.
function UDPIPE:onConnecting(sock, ip, port) end
-- sock timed out (or the connection attempt failed); it is gone.
-- unsent (an addition) counts queued messages that were never sent.
function UDPIPE:onDisconnect(sock, unsent) end
-- sock was closed, by either side.
function UDPIPE:onClose(sock, unsent) end
-- Nothing heard from the peer for the stall timeout; send() now queues.
function UDPIPE:onStalled(sock) end
-- The peer was heard again; the queue is sent right after this.
function UDPIPE:onUnstalled(sock) end
-- Server: a HELLO refused as the server is full. Client: GO AWAY! arrived.
function UDPIPE:onMaxClients(msg, ip, port) end
-- A PING arrived (it was answered).
function UDPIPE:onPing(sock) end
-- A PONG arrived.
function UDPIPE:onPong(sock) end
-- Server: a HELLO with a wrong token was refused.
function UDPIPE:onBadToken(msg, ip, port) end

return UDPIPE
