-- Pauses, resumes or closes an existing event; closing starts its keys' retention, and
-- any of them brings an event retired for idleness back into the walk (retain.lua).
-- KEYS: settings, counters, queue, seen, admitted; ARGV[1]: state, ARGV[2]:
-- retention_ms. Returns 0 for an unknown event, else 1.
local settings_key, state, retention_ms = KEYS[1], ARGV[1], ARGV[2]
if redis.call('EXISTS', settings_key) == 0 then
  return 0
end
redis.call('HSET', settings_key, 'state', state)
retain(state, retention_ms, false)
return 1
