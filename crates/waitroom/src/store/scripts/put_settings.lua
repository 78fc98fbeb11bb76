-- Creates or updates an event's waiting-room settings, as PostgreSQL (the source of
-- truth) has just recorded them. The shuffle seed is drawn once, with the first
-- settings, and never replaced: its hash may already be public. The epoch (see
-- restore.lua) is only set by a new event or a rebuild.
--
-- Closed, the event's keys expire after retention_ms; in any other state they are kept,
-- and an event retired for idleness (retain.lua) is walked again.
--
-- KEYS: settings, counters, queue, seen, admitted
-- ARGV: state, rate, max_active, lifetime_ms, opens_at_ms, seed, seed_sha256, epoch,
-- existing ('1' when PostgreSQL already had the event), retention_ms, pow_difficulty
-- (0: none)
-- Returns 'ok'; 'already_open' when the opening time is changed after opening; or
-- 'unknown_event' when PostgreSQL had the event but Redis has lost it: the caller
-- rebuilds it (restore.lua) rather than starting its queue over.
local settings_key = KEYS[1]
local state, rate, max_active, lifetime_ms, opens_at_ms, seed, seed_sha256, epoch, existing, retention_ms, pow =
  unpack(ARGV)
local opened, current_opens_at_ms, current_state =
  unpack(redis.call('HMGET', settings_key, 'opened', 'opens_at_ms', 'state'))
if not current_state and existing == '1' then
  return 'unknown_event'
end
if opened == '1' and current_opens_at_ms ~= opens_at_ms then
  return 'already_open'
end
redis.call('HSET', settings_key, 'state', state, 'rate', rate, 'max_active', max_active,
  'lifetime_ms', lifetime_ms, 'opens_at_ms', opens_at_ms, 'pow', pow)
redis.call('HSETNX', settings_key, 'seed', seed)
redis.call('HSETNX', settings_key, 'seed_sha256', seed_sha256)
redis.call('HSETNX', settings_key, 'epoch', epoch)
redis.call('HSETNX', settings_key, 'opened', '0')
retain(state, retention_ms, false)
return 'ok'
