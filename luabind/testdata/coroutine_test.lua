-- step() may be called from a coroutine, as LÖVE games often do: the
-- callbacks run on that coroutine, and other coroutines and the main
-- thread can step the same instances.
local T = require 'testlib'

local server, client = T.pair()
local got, ranIn = {}, {}
function server:onNewMessage(msg, sock)
  table.insert(got, msg)
  table.insert(ranIn, coroutine.running() or 'main')
  self:send('re:' .. msg, sock)
end
local replies = {}
function client:onNewMessage(msg) table.insert(replies, msg) end

local stepperCo = coroutine.create(function()
  while true do
    server:step()
    coroutine.yield()
  end
end)
local function stepper() assert(coroutine.resume(stepperCo)) end
local inner = coroutine.create(function()
  for i = 1, 3 do
    client:send('from a coroutine ' .. i)
    coroutine.yield()
  end
end)
for _ = 1, 200 do
  if coroutine.status(inner) ~= 'dead' then assert(coroutine.resume(inner)) end
  stepper()
  client:step()
  if #replies == 3 then break end
end
T.eq(#got, 3, 'server got three messages while stepped in a coroutine')
T.eq(replies[3], 're:from a coroutine 3', 'replies')
T.ok(ranIn[1] == stepperCo, 'the callback ran in the coroutine that called step(), as in PUC Lua')
-- And the main thread steps the server again afterwards.
client:send('main')
T.stepUntil({ server, client }, function() return #replies == 4 end, 'reply on the main thread')

-- Instances made in a coroutine that has ended work from the main thread.
local s2, c2
local maker = coroutine.create(function() s2, c2 = T.pair() end)
assert(coroutine.resume(maker))
T.eq(coroutine.status(maker), 'dead', 'the maker has ended')
local echoed
function s2:onNewMessage(msg, sock) self:send(msg, sock) end
function c2:onNewMessage(msg) echoed = msg end
c2:send('after the maker died')
T.stepUntil({ s2, c2 }, function() return echoed end, 'echo')
T.eq(echoed, 'after the maker died')
