-- Rebuilds an event's waiting room after Redis lost it (a restart without
-- persistence, a FLUSHALL, an asynchronous failover), from what PostgreSQL keeps.
-- Several replicas may notice the loss at once: only the first call rebuilds, the
-- others find the settings and do nothing.
--
-- - Settings, seed and commitment as PostgreSQL has them (never a new seed); the sale
--   counts as opened if its opening time has passed.
-- - The admitted set from the live admissions PostgreSQL recorded, so max_active still
--   holds. (More than fit in one call are added by plain ZADDs right after, during the
--   pause below.)
-- - The arrival counter at epoch << 40, the epoch having been bumped in PostgreSQL
--   first: every fan who joins from now on stands behind every ticket issued before
--   the wipe, whose holders are put back at their old places as they poll
--   (locate.lua).
-- - restored_at_ms: admission pauses for a while from here (admit.lua), so those fans
--   are back before anyone behind them is admitted.
--
-- KEYS: settings, counters, queue, seen, admitted
-- ARGV[1..7]: state, rate, max_active, lifetime_ms, opens_at_ms (0: at once), seed,
-- seed_sha256; ARGV[8]: epoch; ARGV[9]: arrival counter base (epoch << 40);
-- ARGV[10]: admissions recorded so far; ARGV[11]: opened_at_ms to record when the
-- sale opens at once; ARGV[12..]: fan, expiry_ms pairs of live admissions.
-- Returns 1 when this call rebuilt the event, 0 when its settings were there already.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local opens_at = tonumber(ARGV[5])
local opened = now >= opens_at
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'rate', ARGV[2], 'max_active', ARGV[3],
  'lifetime_ms', ARGV[4], 'opens_at_ms', ARGV[5], 'seed', ARGV[6], 'seed_sha256', ARGV[7],
  'epoch', ARGV[8], 'opened', opened and '1' or '0', 'restored_at_ms', now)
if opened then
  redis.call('HSET', KEYS[1], 'opened_at_ms', opens_at > 0 and opens_at or ARGV[11])
end
-- Counters another key's loss may have spared are never moved backwards.
local c = redis.call('HMGET', KEYS[2], 'seq', 'admitted_total')
if (tonumber(c[1]) or 0) < tonumber(ARGV[9]) then
  redis.call('HSET', KEYS[2], 'seq', ARGV[9])
end
if (tonumber(c[2]) or 0) < tonumber(ARGV[10]) then
  redis.call('HSET', KEYS[2], 'admitted_total', ARGV[10])
end
redis.call('HSET', KEYS[2], 'last_ms', now, 'carry', '0')
for i = 12, #ARGV, 2 do
  if tonumber(ARGV[i + 1]) > now then
    redis.call('ZADD', KEYS[5], 'GT', ARGV[i + 1], ARGV[i])
  end
end
return 1
