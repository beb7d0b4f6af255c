-- Pops one id: for each model in order, the active tenant with the lowest
-- pass (ties: the smaller name) that is not throttled, its queue's first
-- id; the tenant is served at max(its pass, the clock), the clock moves to
-- that pass, and the tenant's pass advances by its stride. A tenant whose
-- queue empties leaves the active set, its pass saved.
--
-- KEYS[1]: the tenants' weights (hash); then per model, in the order to
-- try: its active tenants, saved passes, clock, throttled tenants.
-- ARGV[1]: the stride of weight 1; ARGV[2]: the largest weight;
-- ARGV[2 + m]: model m's tenant queue key, less the tenant.
-- Returns {id, m, tenant}, or nil when no model has an id to give.
local function fmt(n) return string.format('%.0f', n) end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local scale = tonumber(ARGV[1])
local max_weight = tonumber(ARGV[2])
for m = 1, #ARGV - 2 do
  local k = 2 + (m - 1) * 4
  local active, saved, clock_key, throttled = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  redis.call('ZREMRANGEBYSCORE', throttled, '-inf', now)
  local tenants = redis.call('ZRANGE', active, 0, -1, 'WITHSCORES')
  for j = 1, #tenants, 2 do
    local tenant = tenants[j]
    local pass = tonumber(tenants[j + 1])
    if not redis.call('ZSCORE', throttled, tenant) then
      local queue = ARGV[2 + m] .. tenant
      local popped = redis.call('ZPOPMIN', queue)
      if popped[1] then
        local clock = tonumber(redis.call('GET', clock_key)) or 0
        if pass < clock then pass = clock end
        local weight = tonumber(redis.call('HGET', KEYS[1], tenant)) or 1
        weight = math.min(math.max(math.floor(weight), 1), max_weight)
        local next_pass = pass + math.floor(scale / weight)
        redis.call('SET', clock_key, fmt(pass))
        if redis.call('EXISTS', queue) == 1 then
          redis.call('ZADD', active, fmt(next_pass), tenant)
        else
          redis.call('ZREM', active, tenant)
          redis.call('HSET', saved, tenant, fmt(next_pass))
        end
        return {popped[1], m, tenant}
      end
      -- Listed but empty (its ids were taken out): no longer active.
      redis.call('ZREM', active, tenant)
      redis.call('HSET', saved, tenant, fmt(pass))
    end
  end
end
return false
