-- Shared helpers for the echo benchmark clients (LuaSocket and UDPIPE).
--
-- Runs unchanged on PUC Lua 5.1, LuaJIT and udpipe-lua: only the standard
-- library is used, so the three clients measure and report the same way.
--
-- Payload layout (64 bytes, one message per datagram):
--   byte 1-2  slot number (0-based, big endian): which in-flight slot
--   byte 3    slot generation: bumped when a slot is re-sent after a loss,
--             so a late reply to the old copy is not counted twice
--   byte 4-64 filler
-- Payloads are built once per slot (and again only on a re-send), so the hot
-- path allocates nothing on the sending side.

local floor, byte, char, rep = math.floor, string.byte, string.char, string.rep

local M = {}

M.SIZE = 64
M.FILLER = rep('x', M.SIZE - 3)

-- payload returns the 64-byte message for a slot (1-based) and generation.
function M.payload(slot, gen)
  local s = slot - 1
  return char(floor(s / 256) % 256, s % 256, gen % 256) .. M.FILLER
end

-- decode returns the 1-based slot and the generation of a reply, or nil if
-- the message is not one of ours.
function M.decode(msg)
  if #msg ~= M.SIZE then return nil end
  local hi, lo, gen = byte(msg, 1, 3)
  return hi * 256 + lo + 1, gen
end

-- A histogram of round-trip times in whole microseconds. socket.gettime()
-- has microsecond resolution, so finer buckets would carry no information,
-- and counting into buckets is cheaper than keeping and sorting every sample.
function M.newhist()
  return {}
end

function M.record(h, seconds)
  local us = floor(seconds * 1e6 + 0.5)
  h[us] = (h[us] or 0) + 1
end

-- percentiles returns the p50 and p99 (in microseconds) of a histogram.
function M.percentiles(h)
  local keys, total = {}, 0
  for us, n in pairs(h) do
    keys[#keys + 1] = us
    total = total + n
  end
  if total == 0 then return 0, 0 end
  table.sort(keys)
  local want50, want99 = total * 0.50, total * 0.99
  local p50, p99
  local seen = 0
  for i = 1, #keys do
    seen = seen + h[keys[i]]
    if not p50 and seen >= want50 then p50 = keys[i] end
    if not p99 and seen >= want99 then p99 = keys[i]; break end
  end
  return p50 or 0, p99 or 0
end

-- result prints the single machine-readable line the harness parses.
function M.result(count, elapsed, h, inflight, resent)
  local p50, p99 = M.percentiles(h)
  local rtps = 0
  if elapsed > 0 then rtps = count / elapsed end
  io.stdout:write(string.format(
    'RESULT rtps=%.0f p50_us=%d p99_us=%d count=%d elapsed_s=%.3f inflight=%d resent=%d\n',
    rtps, p50, p99, count, elapsed, inflight, resent))
  io.stdout:flush()
end

-- ready tells the harness that a server is listening.
function M.ready(port)
  io.stdout:write('READY ' .. tostring(port) .. '\n')
  io.stdout:flush()
end

return M
