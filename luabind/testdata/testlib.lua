-- testlib: what the Lua test scripts share. Each script is run by
-- luabind_test.go; any error fails the test, with the script's line.
local UDPIPE = require 'UDPIPE'
local T = {}

-- fail raises msg, naming the line of the test script that called the
-- check (gopher-lua's error() ignores its level argument).
local function fail(msg)
  local info = debug.getinfo(3, 'Sl')
  error(('%s:%d: %s'):format(info.short_src or info.source, info.currentline, msg), 0)
end

-- eq fails unless a == b.
function T.eq(a, b, what)
  if a ~= b then
    fail(('%s: got %s, want %s'):format(what or 'value', tostring(a), tostring(b)))
  end
end

function T.ok(cond, what)
  if not cond then fail((what or 'condition') .. ' is false') end
end

-- raises checks that fn raises an error whose message contains pattern.
function T.raises(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then fail('expected an error matching ' .. pattern) end
  if not tostring(err):find(pattern, 1, true) then
    fail(('error %q does not contain %q'):format(tostring(err), pattern))
  end
  return err
end

-- until steps every instance until cond() is true; fails after limit
-- seconds of real time (default 3).
function T.stepUntil(instances, cond, what, limit)
  local socket = require 'socket'
  local deadline = socket.gettime() + (limit or 3)
  while not cond() do
    if socket.gettime() > deadline then fail('timed out waiting for ' .. (what or 'condition')) end
    for _, x in ipairs(instances) do x:step() end
  end
end

-- pair starts a server on a free loopback port and a client connected to
-- it; both step with no waiting. It returns them once both saw onConnect.
function T.pair(opts)
  opts = opts or {}
  local server, client = (opts.class or UDPIPE)(), (opts.class or UDPIPE)()
  server:setTimeout(0) client:setTimeout(0)
  if opts.setup then opts.setup(server, client) end
  server:start(0, '127.0.0.1')
  local ip, port = server:getAddress()
  local up = {}
  local sconnect, cconnect = server.onConnect, client.onConnect
  function server:onConnect(sock, ...) up.server = sock sconnect(self, sock, ...) end
  function client:onConnect(sock, ...) up.client = sock cconnect(self, sock, ...) end
  client:connect(ip, port)
  T.stepUntil({server, client}, function() return up.server and up.client end, 'connect')
  server.onConnect, client.onConnect = nil, nil
  return server, client, up.server, up.client
end

return T
