-- Finds a fan in an event's waiting room and, when asked to join, queues them; after
-- a wipe, puts a fan back at the place their ticket names (never in a closed event's
-- line). Refreshes the fan's last-seen time, which is what keeps them from being
-- skipped as abandoned. Join is idempotent: a fan already in line keeps their place.
--
-- Queue scores: a fan who joins before the opening time is scored by their shuffle
-- draw minus 2^52, a negative number (the draw is the first 13 hex digits of
-- SHA-1(seed ":" fan id), see domain/shuffle.rs); later arrivals count up from
-- epoch << 40 (the counter `seq`; epoch 0 until the event's state was first rebuilt
-- after a wipe, see restore.lua). So the pre-queue stands in line ahead of everyone
-- else, already in shuffled order, from the moment each fan joins: opening only has
-- to stop hiding it.
--
-- Restore: when the event was rebuilt from PostgreSQL (settings.restored_at_ms), a fan
-- not found whose ticket was issued before the rebuild, and who comes back within
-- ARGV[5] ms of it, is put back (ZADD NX) at the ticket's score, or a pre-queue fan at
-- their draw. The caller has checked in PostgreSQL that the fan was not admitted since
-- the ticket was issued; a fan with an admission record here is never put back.
--
-- Retired for idleness (admit.lua; settings.retired = '1': nobody in line or admitted,
-- keys expiring, out of the admitter's walk): before this script writes anything (a
-- join, a restored place), it makes the keys permanent again and marks the event
-- 'reviving', which every reply reports until the caller has put the event back in
-- the admitter's index and cleared the mark (revived.lua). A caller that fails in
-- between leaves the mark, so the next join or poll of any fan tries again.
--
-- KEYS: settings, counters, queue, seen, admitted
-- ARGV[1]: fan id; ARGV[2]: 'join', 'poll' or 'restore'; for 'restore' also ARGV[3]:
-- the ticket's place ('pre' or a score), ARGV[4]: its issue time (ms), ARGV[5]: how
-- long after the rebuild tickets may restore (ms).
-- Returns {status, joined, position, queue_length, expiry_ms, state, rate, ewma,
--          ewma_weight, opens_at_ms, score, now_ms, epoch, restored_at_ms,
--          admitted_at_ms, reviving}; status is one of unknown_event (nothing else follows),
--          closed, not_found, pre_queue, waiting, admitted; joined is 1 when this call
--          queued the fan, 2 when it put them back; score is the fan's queue score while
--          waiting, else ''; admitted_at_ms is when an admitted fan's admission began
--          (its expiry less the event's token lifetime), else ''; reviving is 1 while
--          the event is marked 'reviving' (see above), else 0.
local settings_key, counters_key, queue_key, seen_key, admitted_key = unpack(KEYS)
local fan, mode, ticket_place, ticket_issued_at_ms, restore_window_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state, rate, opens_at_ms, opened_flag, epoch, restored_at_ms, retired = unpack(redis.call('HMGET',
  settings_key, 'state', 'rate', 'opens_at_ms', 'opened', 'epoch', 'restored_at_ms', 'retired'))
if not state then
  return {'unknown_event'}
end
local ewma, ewma_weight = unpack(redis.call('HMGET', counters_key, 'ewma', 'ewma_w'))
local opened = opened_flag == '1'

local function reply(status, joined, position, expiry, queue_length, score, admitted_at)
  local length = queue_length or redis.call('ZCARD', queue_key)
  return {status, joined, position, length, expiry, state, rate, ewma or '0', ewma_weight or '0', opens_at_ms,
    score or '', now, epoch or '0', restored_at_ms or '0', admitted_at or '', retired == 'reviving' and 1 or 0}
end

-- Before any write (see the top): a retired event's keys are kept again.
local function revive()
  if retired == '1' and state ~= 'closed' then
    for _, key in ipairs(KEYS) do
      redis.call('PERSIST', key)
    end
    redis.call('HDEL', counters_key, 'idle_since_ms')
    redis.call('HSET', settings_key, 'retired', 'reviving')
    retired = 'reviving'
  end
end

local function draw_score()
  local seed = redis.call('HGET', settings_key, 'seed')
  local draw = tonumber(string.sub(redis.sha1hex(seed .. ':' .. fan), 1, 13), 16)
  return string.format('%d', draw - 4503599627370496)
end

local expiry = redis.call('ZSCORE', admitted_key, fan)
if expiry and tonumber(expiry) > now then
  local lifetime_ms = redis.call('HGET', settings_key, 'lifetime_ms')
  return reply('admitted', 0, 0, expiry, nil, nil, tonumber(expiry) - tonumber(lifetime_ms))
end
-- A closed event admits nobody, so presence no longer matters; and its keys are on
-- their way out (retain.lua): a write here could create one that never expires.
local closed = state == 'closed'
local function seen()
  if not closed then
    revive()
    redis.call('HSET', seen_key, fan, now)
  end
end

local score = redis.call('ZSCORE', queue_key, fan)
if not opened and score and tonumber(score) < 0 then
  -- Until the sale opens, a pre-queue fan's place is not told: it would reveal
  -- the draw before the seed is published.
  seen()
  return reply('pre_queue', 0, 0, 0)
end

local joined, queue_length = 0, nil
if score then
  seen()
elseif mode == 'restore' then
  local restored_at = tonumber(restored_at_ms)
  if closed or expiry or not restored_at or tonumber(ticket_issued_at_ms) >= restored_at
    or now > restored_at + tonumber(restore_window_ms) then
    return reply('not_found', 0, 0, 0)
  end
  local pre = ticket_place == 'pre'
  score = pre and draw_score() or ticket_place
  revive()
  redis.call('ZADD', queue_key, 'NX', score, fan)
  redis.call('HSET', seen_key, fan, now)
  if pre and not opened then
    return reply('pre_queue', 2, 0, 0)
  end
  joined = 2
elseif mode ~= 'join' then
  return reply('not_found', 0, 0, 0)
elseif state == 'closed' then
  return reply('closed', 0, 0, 0)
else
  revive()
  if expiry then
    -- An expired admission: the fan starts over at the back.
    redis.call('ZREM', admitted_key, fan)
  end
  redis.call('HSET', seen_key, fan, now)
  if not opened and now < tonumber(opens_at_ms) then
    redis.call('ZADD', queue_key, draw_score(), fan)
    return reply('pre_queue', 1, 0, 0)
  end
  -- Arrival order is a counter, not a clock, so two replicas can never tie, and the
  -- newest arrival has the highest score: last in line.
  score = redis.call('HINCRBY', counters_key, 'seq', 1)
  redis.call('ZADD', queue_key, score, fan)
  queue_length = redis.call('ZCARD', queue_key)
  return reply('waiting', 1, queue_length, 0, queue_length, score)
end
return reply('waiting', joined, redis.call('ZRANK', queue_key, fan) + 1, 0, queue_length, score)
