-- One admission step for one event; any number of replicas may call it at any time.
--
-- Owed admissions = carry + elapsed * rate, where elapsed runs from the previous step
-- of ANY replica (counters.last_ms), so the total over all replicas follows the rate
-- exactly; the fractional part is carried to the next step. Admissions that cannot
-- be used (queue empty, max-active reached) are dropped rather than saved up, so a
-- sale never bursts above its rate. Abandoned fans are popped and dropped without
-- using an admission. At the opening time the step opens the sale: the pre-queue is
-- already in line in shuffled order (see locate.lua), so opening is only a flag.
--
-- After the event's state was rebuilt from PostgreSQL (settings.restored_at_ms, see
-- restore.lua) the step admits nobody for ARGV[5] ms, so fans whose places Redis lost
-- come back (their next poll puts them back) before anyone behind them is admitted.
--
-- Retiring an idle event (issue 19, item 9): an event whose sale is long over but that
-- nobody closed would otherwise be stepped, and its keys kept, forever. The step keeps
-- an idle clock, counters.idle_since_ms: started by the first step that finds the open
-- event with nobody in line and nobody admitted, cleared by any step that finds a fan
-- in line or admitted, by the step that opens the sale, and by every organizer write
-- and rebuild (retain.lua). A step that finds the clock older than ARGV[6] retires the
-- event: settings.retired = '1', every key expiring after ARGV[7] (as a closed
-- event's), and code 2, on which the caller takes it out of the admitter's index and
-- records the retirement in PostgreSQL. Why nothing is lost:
--  * nobody waits and nobody holds an admission, checked in this atomic script: a fan
--    who joins the moment after finds the mark and brings the event back (locate.lua);
--  * never before the opening time: a pre-queue may wait weeks for it, and a step
--    before the opening returns before the clock is looked at;
--  * the clock only runs while steps see the room empty, so a fan who joins restarts
--    it at the next step (a fan who joins and leaves between two steps goes unseen,
--    and leaves nobody behind); a live admission keeps it stopped until it expires;
--  * its settings, seed and admissions are in PostgreSQL, as for a closed event: a
--    request after the keys expired rebuilds it (still retired), and a join then brings
--    it back with the same seed and nobody's place lost.
-- A retired event's step (the admitter's walk may still list it for a moment) changes
-- nothing and answers code 2 again.
--
-- KEYS: settings, counters, queue, seen, admitted
-- ARGV[1]: abandon_after_ms; ARGV[2]: max catch-up ms (caps a burst after every
-- admitter was down); ARGV[3]: most fans examined per step; ARGV[4]: rate
-- measurement time constant in ms; ARGV[5]: pause after a rebuild, ms; ARGV[6]: how
-- long an open event must stay idle before it is retired, ms; ARGV[7]: how long a
-- retired event's keys live on, ms; ARGV[8]: the admission budget (issue 18), the
-- most admitted fans the sale's remaining places can use, or -1 when there is none
-- (the inventory unknown or stale): the lower of it and max_active caps the room;
-- ARGV[9]: the share of the organizer's rate in force, 0 to 1 (below 1 while the
-- gateways report distress, issue 18's back-pressure).
-- Returns {code, opened_now, skipped, queue_length, active, max_active, rate, now_ms,
-- expiry_ms, fan, score, fan, score, ...} with opened_now 1 when this step opened the
-- sale, and code 1 (stepped), 0 (nothing to do: paused, closed, before opening or
-- just rebuilt), 2 (retired for idleness, now or before) or -1 (unknown event). rate
-- is the rate in force (0 unless running); code 0 carries only the first seven, codes
-- -1 and 2 the first five. Each admitted fan comes with the queue score they were
-- admitted from, for the admission record; then, as many as `skipped` says, each fan
-- dropped as abandoned with their score, so the published log can say why they were
-- never let in.
local settings_key, counters_key, queue_key, seen_key, admitted_key = unpack(KEYS)
local abandon_ms, max_catch_up_ms, scan_limit, tau, pause_after_restore_ms, idle_retention_ms, retention_ms =
  tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]),
  tonumber(ARGV[6]), ARGV[7]
local budget = tonumber(ARGV[8])
local rate_share = tonumber(ARGV[9])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state, rate, max_active, lifetime_ms, opens_at_ms, opened, restored_at_ms, retired = unpack(redis.call('HMGET',
  settings_key, 'state', 'rate', 'max_active', 'lifetime_ms', 'opens_at_ms', 'opened', 'restored_at_ms', 'retired'))
if not state then
  return {-1, 0, 0, 0, 0}
end
if retired == '1' then
  return {2, 0, 0, 0, 0}
end
local last_ms, prior_carry, prior_ewma, prior_weight, idle_since_ms =
  unpack(redis.call('HMGET', counters_key, 'last_ms', 'carry', 'ewma', 'ewma_w', 'idle_since_ms'))
local last = tonumber(last_ms) or now
local dt = math.max(now - last, 0)
redis.call('HSET', counters_key, 'last_ms', last + dt)

redis.call('ZREMRANGEBYSCORE', admitted_key, '-inf', now)
local active = redis.call('ZCARD', admitted_key)
local waiting = redis.call('ZCARD', queue_key)
local opened_now = 0
if opened ~= '1' then
  if state == 'closed' or now < tonumber(opens_at_ms) then
    return {0, 0, 0, waiting, active, max_active, '0'}
  end
  redis.call('HSET', settings_key, 'opened', '1', 'opened_at_ms', now)
  opened_now = 1
end
if state ~= 'closed' then
  -- The idle clock (see the top): from here on the sale has opened.
  if waiting > 0 or active > 0 or opened_now == 1 then
    if idle_since_ms then
      redis.call('HDEL', counters_key, 'idle_since_ms')
    end
  elseif not idle_since_ms then
    redis.call('HSET', counters_key, 'idle_since_ms', now)
  elseif now - tonumber(idle_since_ms) >= idle_retention_ms then
    redis.call('HSET', settings_key, 'retired', '1')
    expire_keys(retention_ms)
    return {2, 0, 0, 0, 0}
  end
end
if state ~= 'running' or (restored_at_ms and now < tonumber(restored_at_ms) + pause_after_restore_ms) then
  return {0, opened_now, 0, waiting, active, max_active, '0'}
end

dt = math.min(dt, max_catch_up_ms)
local owed_f = (tonumber(prior_carry) or 0) + dt * tonumber(rate) * rate_share / 1000
local owed = math.floor(owed_f)
local carry = owed_f - owed
local cap = tonumber(max_active)
if budget >= 0 and budget < cap then
  cap = budget
end
local k = math.min(owed, math.max(cap - active, 0))

local expiry = now + tonumber(lifetime_ms)
-- admitted: fan, score pairs for the n fans admitted.
-- dropped: fan, score pairs for the fans skipped as abandoned.
local admitted, dropped, n, skipped, scanned = {}, {}, 0, 0, 0
while n < k and scanned < scan_limit do
  local popped = redis.call('ZPOPMIN', queue_key, math.min(k - n, scan_limit - scanned))
  if #popped == 0 then
    break
  end
  for i = 1, #popped, 2 do
    local fan = popped[i]
    scanned = scanned + 1
    local seen = tonumber(redis.call('HGET', seen_key, fan))
    redis.call('HDEL', seen_key, fan)
    if seen and now - seen <= abandon_ms then
      redis.call('ZADD', admitted_key, expiry, fan)
      admitted[#admitted + 1] = fan
      admitted[#admitted + 1] = popped[i + 1]
      n = n + 1
    else
      skipped = skipped + 1
      dropped[#dropped + 1] = fan
      dropped[#dropped + 1] = popped[i + 1]
    end
  end
end
if n < k and scanned >= scan_limit and redis.call('ZCARD', queue_key) > 0 then
  -- Stopped by the scan limit among ghosts, not by a lack of fans: still owed.
  carry = carry + (k - n)
end
redis.call('HSET', counters_key, 'carry', string.format('%.17g', carry))
if n > 0 then
  redis.call('HINCRBY', counters_key, 'admitted_total', n)
end
if skipped > 0 then
  redis.call('HINCRBY', counters_key, 'skipped_total', skipped)
end
if waiting > 0 then
  -- Exponentially weighted admissions per second, measured only while fans wait, so
  -- an idle spell does not make the next fan's ETA look endless. The weight corrects
  -- the estimate's bias during the first seconds.
  local decay = math.exp(-dt / tau)
  local ewma = (tonumber(prior_ewma) or 0) * decay + n * 1000 / tau
  local weight = (tonumber(prior_weight) or 0) * decay + (1 - decay)
  redis.call('HSET', counters_key, 'ewma', string.format('%.17g', ewma), 'ewma_w', string.format('%.17g', weight))
end

local reply = {1, opened_now, skipped, waiting - scanned, active + n, max_active, rate, now, expiry}
for i = 1, #admitted do
  reply[#reply + 1] = admitted[i]
end
for i = 1, #dropped do
  reply[#reply + 1] = dropped[i]
end
return reply
