-- Callbacks defined on the class, on a subclass (UDPIPE:extend() or a
-- plain metatable), and on the instance, are all found; the instance's
-- wins; a callback defined after start() is used.
local T = require 'testlib'
local UDPIPE = require 'UDPIPE'

local calls = {}
local Server = UDPIPE:extend()
function Server:onNewMessage(msg, sock) table.insert(calls, 'Server:' .. msg) self:send(msg, sock) end

-- A subclass by hand, as a script written for the original might do.
local Client = setmetatable({}, { __index = UDPIPE })
Client.__index = Client
function Client.new() return setmetatable({}, Client) end
function Client:onNewMessage(msg) table.insert(calls, 'Client:' .. msg) end

local server, client = T.pair({ setup = function() end, class = Server })
T.ok(getmetatable(server) == Server, 'instance of the subclass')

local c2 = Client.new() c2:setTimeout(0)
local up
function c2:onConnect() up = true end
c2:connect(server:getAddress())
T.stepUntil({server, c2}, function() return up end, 'hand-made subclass connects')
c2:send('a')
T.stepUntil({server, c2}, function() return #calls == 2 end, 'echo')
T.eq(calls[1], 'Server:a') T.eq(calls[2], 'Client:a')

-- An instance override wins over the class; defined now, after start.
function server:onNewMessage(msg, sock) table.insert(calls, 'instance:' .. msg) self:send(msg, sock) end
c2:send('b')
T.stepUntil({server, c2}, function() return #calls == 4 end, 'echo after override')
T.eq(calls[3], 'instance:b')

-- A callback defined on UDPIPE itself applies to every instance.
local pongs = 0
function UDPIPE:onPong() pongs = pongs + 1 end
c2:ping()
T.stepUntil({server, c2}, function() return pongs == 1 end, 'class-level onPong')
UDPIPE.onPong = function() end
server:close()
