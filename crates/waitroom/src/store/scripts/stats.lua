-- Live figures for one event, read at one instant.
--
-- KEYS: settings, counters, queue, seen, admitted
-- Returns {} for an unknown event, else {state, queue_length, active,
--          admitted_total, skipped_total, ewma, ewma_weight, last_step_ms,
--          restored_at_ms}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'state', 'restored_at_ms')
local state = s[1]
if not state then
  return {}
end
local c = redis.call('HMGET', KEYS[2], 'admitted_total', 'skipped_total', 'ewma', 'ewma_w', 'last_ms')
return {
  state,
  redis.call('ZCARD', KEYS[3]),
  redis.call('ZCOUNT', KEYS[5], '(' .. now, '+inf'),
  c[1] or '0', c[2] or '0', c[3] or '0', c[4] or '0', c[5] or '0', s[2] or '0',
}
