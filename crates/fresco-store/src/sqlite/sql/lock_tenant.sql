-- Tenant ?1's weight and limits (no row: no limits). Read inside the
-- submission's write transaction: SQLite's one writer checks concurrent
-- submissions in turn.
SELECT weight, max_queued_tasks, max_running_tasks, max_device_seconds_per_day
FROM tenants WHERE name = ?1
