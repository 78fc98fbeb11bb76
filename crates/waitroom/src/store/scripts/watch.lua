-- What a replica tells every fan streaming an event's line (GET …/queue/{ticket}/stream),
-- read once per tick for all of them: how many fans have left the head of the line so
-- far (admitted or skipped as gone: each fan behind moved up by as many), and who was
-- admitted since the last read. A fan's position between exact polls is their last
-- exact position less the head's departures since; read-only, so it costs Redis one
-- call per event and replica per tick, however many fans stream.
--
-- KEYS: settings, counters, queue, seen, admitted
-- ARGV[1]: admissions expiring after this (ms) are new since the last read.
-- Returns {} for an unknown event, else {state, rate, opened, queue_length,
--          left_head_total, ewma, ewma_weight, now_ms, newest_expiry_ms,
--          {fan, expiry_ms, …}}: the admissions expiring after ARGV[1] (all of them:
--          one step's admissions share an expiry, so a page could split them), and the
--          latest expiry among them (ARGV[1] when there is none).
local settings_key, counters_key, queue_key, _, admitted_key = unpack(KEYS)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state, rate, opened = unpack(redis.call('HMGET', settings_key, 'state', 'rate', 'opened'))
if not state then
  return {}
end
local admitted_total, skipped_total, ewma, ewma_weight =
  unpack(redis.call('HMGET', counters_key, 'admitted_total', 'skipped_total', 'ewma', 'ewma_w'))
local fresh = redis.call('ZRANGEBYSCORE', admitted_key, '(' .. ARGV[1], '+inf', 'WITHSCORES')
local newest = ARGV[1]
if #fresh > 0 then
  newest = fresh[#fresh]
end
return {
  state, rate or '0', opened == '1' and 1 or 0, redis.call('ZCARD', queue_key),
  tostring((tonumber(admitted_total) or 0) + (tonumber(skipped_total) or 0)),
  ewma or '0', ewma_weight or '0', now, newest, fresh,
}
