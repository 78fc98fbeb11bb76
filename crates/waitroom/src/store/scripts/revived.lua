-- After a join wrote to a retired event (locate.lua set settings.retired = 'reviving'
-- and made its keys permanent again) and the joiner has put the event back in the
-- admitter's index: it is walked again, so the mark goes. Any other mark is left alone.
--
-- KEYS: settings
-- Returns 1 when it cleared the mark, else 0.
if redis.call('HGET', KEYS[1], 'retired') == 'reviving' then
  redis.call('HDEL', KEYS[1], 'retired')
  return 1
end
return 0
