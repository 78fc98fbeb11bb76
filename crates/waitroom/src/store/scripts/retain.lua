-- Prepended to put_settings.lua, set_state.lua, restore.lua and admit.lua (see
-- scripts.rs): how long an event's keys live. KEYS are the event's five keys (settings,
-- counters, …) in every script that uses it.
--
-- A closed event's keys expire retention_ms from now (`waitroom.closed_retention_secs`),
-- and so do an idle-retired event's (admit.lua); any other event keeps them. PostgreSQL
-- keeps the settings, seed and admissions: a request after the keys are gone rebuilds
-- them. Keys that do not exist yet are left alone.
--
-- settings.retired: absent while the admitter walks the event; '1' once an admission
-- step retired it for idleness (out of the admitter's index, keys expiring); 'reviving'
-- once a join wrote to it again (locate.lua), until the joiner has put it back in the
-- index (revived.lua). counters.idle_since_ms: since when admission steps have found
-- the open event with nobody in line and nobody admitted (admit.lua).
local function expire_keys(retention_ms)
  for _, key in ipairs(KEYS) do
    redis.call('PEXPIRE', key, retention_ms)
  end
end

-- Every organizer write and every rebuild: the idle clock starts again, and the keys
-- expire (closed, or `retired`: a rebuild of an event PostgreSQL records as retired, so
-- a late poll or an organizer's read does not bring it back into the walk) or are kept.
local function retain(state, retention_ms, retired)
  redis.call('HDEL', KEYS[2], 'idle_since_ms')
  if retired and state ~= 'closed' then
    redis.call('HSET', KEYS[1], 'retired', '1')
  else
    redis.call('HDEL', KEYS[1], 'retired')
  end
  if state == 'closed' or retired then
    expire_keys(retention_ms)
  else
    for _, key in ipairs(KEYS) do
      redis.call('PERSIST', key)
    end
  end
end
