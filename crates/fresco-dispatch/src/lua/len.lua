-- How many ids wait in one model's queues, over its active tenants.
--
-- KEYS[1]: the model's active tenants
-- ARGV[1]: the model's tenant queue key, less the tenant.
local total = 0
for _, tenant in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  total = total + redis.call('ZCARD', ARGV[1] .. tenant)
end
return total
