-- Finds a fan in an event's waiting room and, when asked to join, queues them.
-- Refreshes the fan's last-seen time, which is what keeps them from being skipped
-- as abandoned. Join is idempotent: a fan already waiting keeps their place.
--
-- KEYS: settings, counters, queue, prequeue, seen, admitted
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
-- Opening empties the pre-queue for good, so an open sale never needs to look at it.
local opened = s[4] == '1'

local function prequeue_length()
  if opened then
    return 0
  end
  return redis.call('ZCARD', KEYS[4])
end

local function reply(status, joined, position, expiry, queue_length)
  local length = (queue_length or redis.call('ZCARD', KEYS[3])) + prequeue_length()
  return {status, joined, position, length, expiry, s[1], s[2], c[1] or '0', c[2] or '0', s[3]}
end

local expiry = redis.call('ZSCORE', KEYS[6], fan)
if expiry and tonumber(expiry) > now then
  return reply('admitted', 0, 0, expiry)
end
if not opened and redis.call('ZSCORE', KEYS[4], fan) then
  redis.call('HSET', KEYS[5], fan, now)
  return reply('pre_queue', 0, 0, 0)
end

local joined, queue_length = 0, nil
local rank = redis.call('ZRANK', KEYS[3], fan)
if rank then
  redis.call('HSET', KEYS[5], fan, now)
else
  if not join then
    return reply('not_found', 0, 0, 0)
  end
  if s[1] == 'closed' then
    return reply('closed', 0, 0, 0)
  end
  if expiry then
    -- An expired admission: the fan starts over at the back.
    redis.call('ZREM', KEYS[6], fan)
  end
  redis.call('HSET', KEYS[5], fan, now)
  if not opened and now < tonumber(s[3]) then
    redis.call('ZADD', KEYS[4], redis.call('HINCRBY', KEYS[2], 'preseq', 1), fan)
    return reply('pre_queue', 1, 0, 0)
  end
  -- Arrival order is a counter, not a clock, so two replicas can never tie, and the
  -- newest arrival has the highest score: last in line (pre-queue scores are negative).
  redis.call('ZADD', KEYS[3], redis.call('HINCRBY', KEYS[2], 'seq', 1), fan)
  queue_length = redis.call('ZCARD', KEYS[3])
  rank = queue_length - 1
  joined = 1
end

-- Past the opening time but not yet shuffled, the pre-queue still goes first.
local position = rank + 1 + prequeue_length()
return reply('waiting', joined, position, 0, queue_length)
