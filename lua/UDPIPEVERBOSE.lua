-- UDPIPEVERBOSE: UDPIPE with debugging on. Every datagram sent and received
-- and every change of state is printed on stderr, one line each.
--
--   UDPIPE = require 'UDPIPEVERBOSE'   -- instead of require 'UDPIPE'
local UDPIPE = require 'UDPIPE'

local UDPIPEVERBOSE = UDPIPE:extend()
UDPIPEVERBOSE.debug = true

return UDPIPEVERBOSE
