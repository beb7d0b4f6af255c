-- Skips one tenant of one model in pops until now + ARGV[2] ms (by the
-- Redis clock, which pops read too), or later when already set so.
--
-- KEYS[1]: the model's throttled tenants
-- ARGV[1]: the tenant; ARGV[2]: milliseconds.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ms = tonumber(ARGV[2])
local until_ms = now + ms
local set = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if not set or set < until_ms then
  redis.call('ZADD', KEYS[1], string.format('%.0f', until_ms), ARGV[1])
end
if redis.call('PTTL', KEYS[1]) < ms then
  redis.call('PEXPIRE', KEYS[1], ms)
end
return 0
