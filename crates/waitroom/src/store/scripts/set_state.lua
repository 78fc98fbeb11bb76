-- Pauses, resumes or closes an existing event.
-- KEYS: settings; ARGV[1]: state. Returns 0 for an unknown event, else 1.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
return 1
