-- Queues ids for one tenant of one model, each once (ZADD NX), and makes
-- the tenant active when it has ids and was not: it starts at
-- max(its saved pass, the model's clock), so idle time earns no credit.
-- Also heals a tenant queue left out of the active set (nothing pushed).
--
-- KEYS[1]: the tenant's queue      KEYS[2]: the model's active tenants
-- KEYS[3]: the model's saved passes KEYS[4]: the model's clock
-- ARGV[1]: the tenant; ARGV[2..]: score, id pairs.
if #ARGV > 1 then
  redis.call('ZADD', KEYS[1], 'NX', unpack(ARGV, 2))
end
if redis.call('EXISTS', KEYS[1]) == 1 and not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  local saved = tonumber(redis.call('HGET', KEYS[3], ARGV[1])) or 0
  local clock = tonumber(redis.call('GET', KEYS[4])) or 0
  redis.call('ZADD', KEYS[2], string.format('%.0f', math.max(saved, clock)), ARGV[1])
end
return 0
