-- Prepended to put_settings.lua, set_state.lua and restore.lua (see scripts.rs): the
-- retention of a closed event's keys, `waitroom.closed_retention_secs`. KEYS are the
-- event's five keys in every script that uses it.
-- A closed event's keys expire retention_ms from now (PostgreSQL keeps its settings,
-- seed and admissions; a request after they are gone rebuilds them); any other state
-- keeps them. Keys that do not exist yet are left alone.
local function retain(state, retention_ms)
  for _, key in ipairs(KEYS) do
    if state == 'closed' then
      redis.call('PEXPIRE', key, retention_ms)
    else
      redis.call('PERSIST', key)
    end
  end
end
