-- Creates or updates an event's waiting-room settings, as PostgreSQL (the source of
-- truth) has just recorded them. The shuffle seed is drawn once, with the first
-- settings, and never replaced: its hash may already be public. The epoch (see
-- restore.lua) is only set by a new event or a rebuild.
--
-- KEYS: settings
-- ARGV: state, rate, max_active, lifetime_ms, opens_at_ms, seed, seed_sha256, epoch,
-- existing ('1' when PostgreSQL already had the event)
-- Returns 'ok'; 'already_open' when the opening time is changed after opening; or
-- 'unknown_event' when PostgreSQL had the event but Redis has lost it: the caller
-- rebuilds it (restore.lua) rather than starting its queue over.
local cur = redis.call('HMGET', KEYS[1], 'opened', 'opens_at_ms', 'state')
if not cur[3] and ARGV[9] == '1' then
  return 'unknown_event'
end
if cur[1] == '1' and cur[2] ~= ARGV[5] then
  return 'already_open'
end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'rate', ARGV[2], 'max_active', ARGV[3],
  'lifetime_ms', ARGV[4], 'opens_at_ms', ARGV[5])
redis.call('HSETNX', KEYS[1], 'seed', ARGV[6])
redis.call('HSETNX', KEYS[1], 'seed_sha256', ARGV[7])
redis.call('HSETNX', KEYS[1], 'epoch', ARGV[8])
redis.call('HSETNX', KEYS[1], 'opened', '0')
return 'ok'
