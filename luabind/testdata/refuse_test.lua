-- onMaxClients on both sides, onBadToken on the server, and setToken.
local T = require 'testlib'
local UDPIPE = require 'UDPIPE'

local server = UDPIPE()
server:setTimeout(0)
server:setMaxClients(1)
server:setToken('secret')
server:start(0, '127.0.0.1')
local ip, port = server:getAddress()

local refused, bad = {}, {}
function server:onMaxClients(msg, ip, port) table.insert(refused, { msg, ip, port }) end
function server:onBadToken(msg, ip, port) table.insert(bad, { msg, ip, port }) end

-- A client with the right token gets in.
local first = UDPIPE() first:setTimeout(0) first:setToken('secret')
local up
function first:onConnect() up = true end
first:connect(ip, port)
T.stepUntil({server, first}, function() return up end, 'first client')

-- A second one is refused: the server is full.
local second = UDPIPE() second:setTimeout(0) second:setToken('secret')
local goaway, gone
function second:onMaxClients(msg, ip, port) goaway = { msg, ip, port } end
function second:onDisconnect(sock) gone = sock end
local ssock = second:connect(ip, port)
T.stepUntil({server, second}, function() return goaway and gone end, 'GO AWAY! for a full server')
T.eq(goaway[1], 'GO AWAY!', 'client onMaxClients msg') T.eq(goaway[2], ip) T.eq(goaway[3], port)
T.ok(rawequal(gone, ssock), 'client onDisconnect after GO AWAY!')
T.eq(#refused, 1, 'server onMaxClients')
T.eq(refused[1][1], 'HELLO secret', 'server onMaxClients msg')
local _, sport = ssock:getsockname()
T.eq(refused[1][2], '127.0.0.1') T.eq(refused[1][3], sport, 'server onMaxClients port')

-- A client with the wrong token is refused too, reported as a bad token.
local third = UDPIPE() third:setTimeout(0) third:setToken('guess')
local thirdRefused
function third:onMaxClients(msg) thirdRefused = msg end
third:connect(ip, port)
T.stepUntil({server, third}, function() return thirdRefused end, 'GO AWAY! for a bad token')
T.eq(#bad, 1, 'server onBadToken')
T.eq(bad[1][1], 'HELLO guess', 'onBadToken msg')
T.eq(#refused, 1, 'a bad token is not reported as max clients')
server:close()
