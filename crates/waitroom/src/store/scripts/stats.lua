-- Live figures for one event, read at one instant.
--
-- KEYS: settings, counters, queue, seen, admitted
-- Returns {} for an unknown event, else {state, queue_length, active,
--          admitted_total, skipped_total, ewma, ewma_weight, last_step_ms,
--          restored_at_ms}.
local settings_key, counters_key, queue_key, _, admitted_key = unpack(KEYS)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state, restored_at_ms = unpack(redis.call('HMGET', settings_key, 'state', 'restored_at_ms'))
if not state then
  return {}
end
local admitted_total, skipped_total, ewma, ewma_weight, last_step_ms =
  unpack(redis.call('HMGET', counters_key, 'admitted_total', 'skipped_total', 'ewma', 'ewma_w', 'last_ms'))
return {
  state,
  redis.call('ZCARD', queue_key),
  redis.call('ZCOUNT', admitted_key, '(' .. now, '+inf'),
  admitted_total or '0', skipped_total or '0', ewma or '0', ewma_weight or '0', last_step_ms or '0',
  restored_at_ms or '0',
}
