SELECT name, weight, max_queued_tasks, max_running_tasks, max_device_seconds_per_day
FROM tenants WHERE name = $1
