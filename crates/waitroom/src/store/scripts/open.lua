-- Opens the sale: places the shuffled pre-queue ahead of everyone who arrived after
-- the opening time. Pre-queue fans get scores -n..-1 and later arrivals count up
-- from 1, so the pre-queue goes first whenever the shuffle happens.
--
-- The order is computed by the caller from the seed; this script only checks that
-- it covers exactly the current pre-queue, so a fan leaving meanwhile cannot be lost
-- or resurrected. Exactly one caller wins; others see 0.
--
-- KEYS: settings, counters, queue, prequeue, seen, admitted
-- ARGV: the pre-queue fan ids, first in line first.
-- Returns 1 (opened), 0 (already open), -1 (too early), -2 (pre-queue changed).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'opened', 'opens_at_ms')
if s[1] == '1' then
  return 0
end
if not s[2] or now < tonumber(s[2]) then
  return -1
end
local n = #ARGV
if redis.call('ZCARD', KEYS[4]) ~= n then
  return -2
end
for i = 1, n do
  if not redis.call('ZSCORE', KEYS[4], ARGV[i]) then
    return -2
  end
end
for i = 1, n do
  redis.call('ZADD', KEYS[3], i - n - 1, ARGV[i])
end
redis.call('DEL', KEYS[4])
redis.call('HSET', KEYS[1], 'opened', '1', 'opened_at_ms', now)
return 1
