-- Many-clients run for issue 4: N UDPIPE client instances in one process.
--
-- usage: udpipe-lua udpipe_many_clients.lua [port] [clients] [timeout_s] [hold_s] [host]
--
-- Every instance connects to the server, sends one message in onConnect and
-- counts the reply. All instances are stepped in one loop with a zero step
-- timeout (a blocking step per instance would make a pass take N timeouts);
-- when a whole pass handled nothing the loop sleeps 1 ms instead of
-- spinning. When every client has been answered or has given up (refused,
-- timed out), or timeout_s passed, it prints
--   RESULT clients=<N> connected=<> answered=<> disconnected=<> maxclients=<> open=<> connect_s=<> all_s=<>
-- (connected: ever connected; open: connected right now; connect_s/all_s:
-- -1 if not all made it)
-- then keeps every connection open for hold_s (the harness reads the
-- server's memory meanwhile), closes them all and exits.

local UDPIPE = require 'UDPIPE'
local socket = require 'socket'

local port = tonumber(arg[1]) or 12345
local n = tonumber(arg[2]) or 2000
local timeout = tonumber(arg[3]) or 30
local hold = tonumber(arg[4]) or 2
local host = arg[5] or '127.0.0.1'

local gettime, sleep = socket.gettime, socket.sleep

local connected, answered, disconnected, closed, maxclients = 0, 0, 0, 0, 0
-- open counts connections that are up right now (connected, and neither
-- disconnected nor closed since): the harness divides memory by it.
local open = 0
-- finished counts instances that are done: answered, or their attempt ended
-- (refused or timed out). The loop below waits for all, not for a timeout.
local finished = 0
local function finish(self)
  if not self.finished then
    self.finished = true
    finished = finished + 1
  end
end
-- events counts callbacks, so the loop can tell whether a pass did anything.
local events = 0
local t0 = gettime()
local tConnected, tAnswered

-- The callbacks are shared functions stored on each instance (the same as
-- `function c:onConnect ... end` per instance, without a closure each), so
-- the client process does not grow with N more than the engine makes it.
local Client = {}

function Client:onConnect(sock)
  events = events + 1
  connected = connected + 1
  open = open + 1
  self.up = true
  if connected == n then tConnected = gettime() end
  self:send('hello from client ' .. self.id)
end

function Client:onNewMessage(msg, sock)
  events = events + 1
  if not self.answered then
    self.answered = true
    answered = answered + 1
    if answered == n then tAnswered = gettime() end
    finish(self)
  end
end

-- down marks an instance's connection as gone (once, whichever event ends it).
local function down(self)
  if self.up then
    self.up = false
    open = open - 1
  end
end

function Client:onDisconnect(sock)
  events = events + 1
  disconnected = disconnected + 1
  down(self)
  finish(self)
end

function Client:onClose(sock)
  events = events + 1
  closed = closed + 1
  down(self)
  finish(self)
end

-- The server refused (GO AWAY!): counted so a refusal is told apart from a
-- timeout.
function Client:onMaxClients(msg, ip, port)
  events = events + 1
  maxclients = maxclients + 1
  finish(self)
end

local clients = {}
for i = 1, n do
  local c = UDPIPE()
  for name, f in pairs(Client) do c[name] = f end
  c.id = i
  c:connect(host, port, 0)
  c:setTimeout(0)
  clients[i] = c
end

-- pass steps every instance once and reports whether anything happened.
local function pass()
  local before = events
  for i = 1, n do
    clients[i]:step()
  end
  return events ~= before
end

local deadline = t0 + timeout
while finished < n and gettime() < deadline do
  if not pass() then sleep(0.001) end
end

local function since(t)
  if not t then return -1 end
  return t - t0
end
io.stdout:write(string.format(
  'RESULT clients=%d connected=%d answered=%d disconnected=%d maxclients=%d open=%d connect_s=%.3f all_s=%.3f\n',
  n, connected, answered, disconnected, maxclients, open, since(tConnected), since(tAnswered)))
io.stdout:flush()

-- Hold the connections open (keeping them alive with step) while the harness
-- measures the server.
local stop = gettime() + hold
while gettime() < stop do
  if not pass() then sleep(0.001) end
end

for i = 1, n do
  clients[i]:close()
end
stop = gettime() + 2
while open > 0 and gettime() < stop do
  if not pass() then sleep(0.001) end
end
