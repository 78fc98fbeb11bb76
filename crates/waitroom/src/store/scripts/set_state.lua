-- Pauses, resumes or closes an existing event.
-- KEYS: settings; ARGV[1]: state. Returns 0 for an unknown event, else 1.
local settings_key, state = KEYS[1], ARGV[1]
if redis.call('EXISTS', settings_key) == 0 then
  return 0
end
redis.call('HSET', settings_key, 'state', state)
return 1
