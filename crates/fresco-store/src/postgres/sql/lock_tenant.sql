-- Tenant $1's weight and limits, its row locked until the transaction
-- ends, so two submissions of one tenant are checked one after the other
-- (no row: no limits, nothing to lock).
SELECT weight, max_queued_tasks, max_running_tasks, max_device_seconds_per_day
FROM tenants WHERE name = $1
FOR UPDATE
