-- clock: manual
-- The network conditioner: a blackout longer than the stall timeout and
-- shorter than the disconnect timeout gives one onStalled and one
-- onUnstalled; what was sent meanwhile arrives after, in order, before
-- anything sent later. Loss is counted; setSimulation(nil) turns it off.
local T = require 'testlib'

local server, client, ssock, csock = T.pair()
local events, got = {}, {}
function client:onStalled() table.insert(events, 'stalled') end
function client:onUnstalled() table.insert(events, 'unstalled') end
function client:onDisconnect() table.insert(events, 'disconnect') end
function server:onDisconnect() table.insert(events, 'server disconnect') end
function server:onNewMessage(msg) table.insert(got, msg) end

client:blackout(5)
local sent = 0
for i = 1, 60 do            -- 6 s in steps of 0.1 s
  advance(0.1)
  server:step() client:step()
  if client:getStats(csock).stalled and sent < 3 then
    sent = sent + 1
    T.eq(client:send('during' .. sent), true, 'send while stalled')
  end
end
T.eq(table.concat(events, ','), 'stalled,unstalled', 'one stall, one recovery, no disconnect')
client:send('after')
T.stepUntil({ server, client }, function() return #got == 4 end, 'messages')
T.eq(table.concat(got, ','), 'during1,during2,during3,after', 'order')
T.ok(client:getStats().simLost > 0, 'the blackout lost datagrams')

-- Loss both ways, seeded: messages are lost, and counted.
client:setSimulation{ loss = 0.5, seed = 7 }
got = {}
for i = 1, 200 do client:send('m' .. i) end
for _ = 1, 20 do advance(0.01) server:step() client:step() end
T.ok(#got > 50 and #got < 150, ('about half of 200 arrived: %d'):format(#got))
local lost = client:getStats().simLost
client:setSimulation(nil)
got = {}
for i = 1, 50 do client:send('n' .. i) end
T.stepUntil({ server, client }, function() return #got == 50 end, 'all arrive with the conditioner off')
T.eq(client:getStats().simLost, lost, 'nothing lost when off')

-- Delay: held until due on the conditioner's clock.
client:setSimulation{ delay = 0.5 }
got = {}
client:send('late')
for _ = 1, 5 do advance(0.05) server:step() client:step() end
T.eq(#got, 0, 'not yet after 0.25 s')
for _ = 1, 10 do advance(0.05) client:step() server:step() end
T.eq(got[1], 'late', 'delivered after the delay')
T.raises('loss must be a number from 0 to 1', client.setSimulation, client, { loss = 2 })
server:close()
