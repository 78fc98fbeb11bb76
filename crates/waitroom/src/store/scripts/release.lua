-- A fan who has booked (or joined the waitlist) is done shopping: their admission stops
-- counting under the event's max_active, so the next fan in line can be admitted (the
-- outbox's `booking.confirmed` or `waitlist.joined`, delivered by `crate::release`). Their access token stays valid
-- until it expires: they still need it to see their booking.
--
-- Only an admission that began before the booking is released: a release delivered
-- late (the waiting room was down, a retry) must not end an admission the fan got
-- afterwards by queueing again. The booking's time is the database's clock and an
-- admission's is Redis'; ARGV[3] allows for the two disagreeing.
--
-- KEYS: settings, counters, queue, seen, admitted
-- ARGV[1]: fan id; ARGV[2]: when the booking was confirmed (ms); ARGV[3]: the clock
-- skew allowed (ms).
-- Returns -1 for an unknown event, else how many admissions were released (0 or 1).
local settings_key, _, _, _, admitted_key = unpack(KEYS)
local fan, booked_at_ms, skew_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local lifetime_ms = redis.call('HGET', settings_key, 'lifetime_ms')
if not lifetime_ms then
  return -1
end
local expiry = redis.call('ZSCORE', admitted_key, fan)
if not expiry or tonumber(expiry) - tonumber(lifetime_ms) > booked_at_ms + skew_ms then
  return 0
end
return redis.call('ZREM', admitted_key, fan)
