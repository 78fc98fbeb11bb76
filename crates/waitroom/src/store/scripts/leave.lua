-- Removes a fan from wherever they are in an event's waiting room. An admitted fan
-- who leaves frees their place under the max-active cap at once.
--
-- KEYS: settings, counters, queue, seen, admitted
-- ARGV[1]: fan id
-- Returns -1 for an unknown event, else how many places were removed (0 or 1).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
local fan = ARGV[1]
redis.call('HDEL', KEYS[4], fan)
return redis.call('ZREM', KEYS[3], fan) + redis.call('ZREM', KEYS[5], fan)
