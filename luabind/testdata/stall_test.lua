-- clock: manual
-- onStalled / onUnstalled, the send queue flushed in order on recovery,
-- and onDisconnect on timeout with the count of unsent messages, on a
-- manual clock: advance(s) moves time for every instance of this script.
local T = require 'testlib'

local server, client, ssock, csock = T.pair()
local got, events = {}, {}
function server:onNewMessage(msg) table.insert(got, msg) end
function client:onStalled(sock) table.insert(events, 'stalled') T.ok(rawequal(sock, csock), 'onStalled sock') end
function client:onUnstalled(sock) table.insert(events, 'unstalled') T.ok(rawequal(sock, csock), 'onUnstalled sock') end

-- The server goes quiet (it is not stepped) for longer than the stall
-- timeout (3 s): the client stalls once, however often it steps.
for _ = 1, 4 do advance(1) client:step() end
T.eq(table.concat(events, ','), 'stalled', 'events after 4 s of silence')
T.ok(client:getStats(csock).stalled, 'stats say stalled')

-- While stalled, send queues, in order.
T.eq(client:send('one'), true, 'send while stalled queues')
T.eq(client:send('two'), true, 'second send queues')
T.eq(client:getStats(csock).queued, 2, 'two queued')
T.eq(#got, 0, 'nothing sent while stalled')

-- The server wakes up: it answers the client's pings; the client hears
-- it, unstalls, and sends the queue before anything sent later.
server:step() -- reads the PINGs, sends PONGs
client:step() -- hears a PONG: onUnstalled, then the queue goes out
T.eq(table.concat(events, ','), 'stalled,unstalled', 'events after recovery')
client:send('three')
T.stepUntil({server, client}, function() return #got == 3 end, 'three messages')
T.eq(table.concat(got, ','), 'one,two,three', 'order of delivery')
T.eq(client:getStats(csock).queued, 0, 'queue empty')

-- The queue is bounded: what does not fit is refused, not dropped.
client:setQueueLimit(2)
for _ = 1, 4 do advance(1) client:step() end
T.eq(table.concat(events, ','), 'stalled,unstalled,stalled', 'stalled again')
T.eq(client:send('a'), true) T.eq(client:send('b'), true)
local ok, err = client:send('c')
T.eq(ok, nil, 'send past the queue limit fails')
T.ok(err:find('queue full'), 'reason names the full queue: ' .. tostring(err))

-- Silence up to the disconnect timeout (10 s): onDisconnect, with the
-- two queued messages reported unsent; the socket is gone.
local disconnected, unsent
function client:onDisconnect(sock, n) disconnected = sock unsent = n end
for _ = 1, 7 do advance(1) client:step() end
T.ok(rawequal(disconnected, csock), 'onDisconnect sock')
T.eq(unsent, 2, 'unsent messages reported')
T.eq(client:getStats(csock).state, 'closed', 'connection over')
T.eq(client:send('d'), nil, 'send after disconnect fails')

-- The server times its client out too, once it has taken in the pings
-- the client sent until it gave up: those count as signs of life.
local sdisc
function server:onDisconnect(sock) sdisc = sock end
server:step()
advance(9.9) server:step()
T.eq(sdisc, nil, 'no disconnect before the timeout')
advance(0.2) server:step()
T.ok(rawequal(sdisc, ssock), 'server onDisconnect')
