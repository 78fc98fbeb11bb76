-- Finds a fan in an event's waiting room and, when asked to join, queues them.
-- Refreshes the fan's last-seen time, which is what keeps them from being skipped
-- as abandoned. Join is idempotent: a fan already in line keeps their place.
--
-- Queue scores: a fan who joins before the opening time is scored by their shuffle
-- draw minus 2^52, a negative number (the draw is the first 13 hex digits of
-- SHA-1(seed ":" fan id), see domain/shuffle.rs); later arrivals count up from 1. So
-- the pre-queue stands in line ahead of everyone else, already in shuffled order,
-- from the moment each fan joins: opening only has to stop hiding it.
--
-- KEYS: settings, counters, queue, seen, admitted
-- ARGV[1]: fan id; ARGV[2]: 'join' or 'poll'
-- Returns {status, joined, position, queue_length, expiry_ms, state, rate,
--          ewma, ewma_weight, opens_at_ms}; status is one of unknown_event,
--          closed, not_found, pre_queue, waiting, admitted.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'state', 'rate', 'opens_at_ms', 'opened')
if not s[1] then
  return {'unknown_event'}
end
local c = redis.call('HMGET', KEYS[2], 'ewma', 'ewma_w')
local fan, join = ARGV[1], ARGV[2] == 'join'
local opened = s[4] == '1'

local function reply(status, joined, position, expiry, queue_length)
  local length = queue_length or redis.call('ZCARD', KEYS[3])
  return {status, joined, position, length, expiry, s[1], s[2], c[1] or '0', c[2] or '0', s[3]}
end

local expiry = redis.call('ZSCORE', KEYS[5], fan)
if expiry and tonumber(expiry) > now then
  return reply('admitted', 0, 0, expiry)
end
if not opened then
  local score = redis.call('ZSCORE', KEYS[3], fan)
  if score and tonumber(score) < 0 then
    -- Until the sale opens, a pre-queue fan's place is not told: it would reveal
    -- the draw before the seed is published.
    redis.call('HSET', KEYS[4], fan, now)
    return reply('pre_queue', 0, 0, 0)
  end
end

local joined, queue_length = 0, nil
local rank = redis.call('ZRANK', KEYS[3], fan)
if rank then
  redis.call('HSET', KEYS[4], fan, now)
else
  if not join then
    return reply('not_found', 0, 0, 0)
  end
  if s[1] == 'closed' then
    return reply('closed', 0, 0, 0)
  end
  if expiry then
    -- An expired admission: the fan starts over at the back.
    redis.call('ZREM', KEYS[5], fan)
  end
  redis.call('HSET', KEYS[4], fan, now)
  if not opened and now < tonumber(s[3]) then
    local seed = redis.call('HGET', KEYS[1], 'seed')
    local draw = tonumber(string.sub(redis.sha1hex(seed .. ':' .. fan), 1, 13), 16)
    redis.call('ZADD', KEYS[3], string.format('%d', draw - 4503599627370496), fan)
    return reply('pre_queue', 1, 0, 0)
  end
  -- Arrival order is a counter, not a clock, so two replicas can never tie, and the
  -- newest arrival has the highest score: last in line.
  redis.call('ZADD', KEYS[3], redis.call('HINCRBY', KEYS[2], 'seq', 1), fan)
  queue_length = redis.call('ZCARD', KEYS[3])
  rank = queue_length - 1
  joined = 1
end
return reply('waiting', joined, rank + 1, 0, queue_length)
