-- Takes ids out of one tenant's queue of one model; a tenant left with
-- none leaves the active set, its pass saved.
--
-- KEYS[1]: the tenant's queue      KEYS[2]: the model's active tenants
-- KEYS[3]: the model's saved passes
-- ARGV[1]: the tenant; ARGV[2..]: the ids.
redis.call('ZREM', KEYS[1], unpack(ARGV, 2))
if redis.call('EXISTS', KEYS[1]) == 0 then
  local pass = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if pass then
    redis.call('ZREM', KEYS[2], ARGV[1])
    redis.call('HSET', KEYS[3], ARGV[1], pass)
  end
end
return 0
