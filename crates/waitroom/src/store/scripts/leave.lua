-- Removes a fan from wherever they are in an event's waiting room. An admitted fan
-- who leaves frees their place under the max-active cap at once.
--
-- KEYS: settings, counters, queue, seen, admitted
-- ARGV[1]: fan id
-- Returns -1 for an unknown event, else how many places were removed (0 or 1).
local settings_key, _, queue_key, seen_key, admitted_key = unpack(KEYS)
local fan = ARGV[1]
if redis.call('EXISTS', settings_key) == 0 then
  return -1
end
redis.call('HDEL', seen_key, fan)
return redis.call('ZREM', queue_key, fan) + redis.call('ZREM', admitted_key, fan)
