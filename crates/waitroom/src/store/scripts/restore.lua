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
-- sale opens at once; ARGV[12]: retention_ms (a closed event is rebuilt to answer
-- requests, and expires again after it); ARGV[13]: '1' when PostgreSQL records the
-- event as retired for idleness (rebuilt retired: it expires again, and only a join
-- brings it back into the walk, see retain.lua), else '0'; ARGV[14]: pow_difficulty
-- (0: none); ARGV[15..]: fan, expiry_ms pairs of live admissions.
-- Returns 1 when this call rebuilt the event, 0 when its settings were there already.
local settings_key, counters_key, _, _, admitted_key = unpack(KEYS)
local state, rate, max_active, lifetime_ms, opens_at_ms, seed, seed_sha256, epoch, seq_base, admitted_total,
  opened_at_ms, retention_ms, retired, pow = unpack(ARGV, 1, 14)
local FIRST_ADMISSION = 15
if redis.call('EXISTS', settings_key) == 1 then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local opens_at = tonumber(opens_at_ms)
local opened = now >= opens_at
redis.call('HSET', settings_key, 'state', state, 'rate', rate, 'max_active', max_active,
  'lifetime_ms', lifetime_ms, 'opens_at_ms', opens_at_ms, 'seed', seed, 'seed_sha256', seed_sha256,
  'epoch', epoch, 'opened', opened and '1' or '0', 'restored_at_ms', now, 'pow', pow)
if opened then
  redis.call('HSET', settings_key, 'opened_at_ms', opens_at > 0 and opens_at or opened_at_ms)
end
-- Counters another key's loss may have spared are never moved backwards.
local seq, recorded_total = unpack(redis.call('HMGET', counters_key, 'seq', 'admitted_total'))
if (tonumber(seq) or 0) < tonumber(seq_base) then
  redis.call('HSET', counters_key, 'seq', seq_base)
end
if (tonumber(recorded_total) or 0) < tonumber(admitted_total) then
  redis.call('HSET', counters_key, 'admitted_total', admitted_total)
end
redis.call('HSET', counters_key, 'last_ms', now, 'carry', '0')
for i = FIRST_ADMISSION, #ARGV, 2 do
  local fan, expiry_ms = ARGV[i], ARGV[i + 1]
  if tonumber(expiry_ms) > now then
    redis.call('ZADD', admitted_key, 'GT', expiry_ms, fan)
  end
end
retain(state, retention_ms, retired == '1')
return 1
