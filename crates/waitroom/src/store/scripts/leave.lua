-- Removes a fan from wherever they are in an event's waiting room. An admitted fan
-- who leaves frees their place under the max-active cap at once.
--
-- KEYS: settings, counters, queue, seen, admitted
-- ARGV[1]: fan id
-- Returns {-1, 0, 0} for an unknown event, else {places removed (0 or 1), the expiry
-- (ms) of the admission ended (0 if none), now (ms)}: an ended admission is recorded in
-- PostgreSQL, so a rebuild after a wipe does not count the fan again.
local settings_key, _, queue_key, seen_key, admitted_key = unpack(KEYS)
local fan = ARGV[1]
if redis.call('EXISTS', settings_key) == 0 then
  return {-1, 0, 0}
end
redis.call('HDEL', seen_key, fan)
local expiry = redis.call('ZSCORE', admitted_key, fan)
local removed = redis.call('ZREM', queue_key, fan) + redis.call('ZREM', admitted_key, fan)
local t = redis.call('TIME')
return {removed, expiry and tonumber(expiry) or 0, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
