-- Stores tenant $1's weight and limits, replacing what it had.
INSERT INTO tenants (name, weight, max_queued_tasks, max_running_tasks,
                     max_device_seconds_per_day)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (name) DO UPDATE
SET weight = EXCLUDED.weight,
    max_queued_tasks = EXCLUDED.max_queued_tasks,
    max_running_tasks = EXCLUDED.max_running_tasks,
    max_device_seconds_per_day = EXCLUDED.max_device_seconds_per_day
