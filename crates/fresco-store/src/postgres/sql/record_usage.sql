-- Adds one reported attempt of task $1, which took $2 ms of device time,
-- to its tenant's usage today (UTC).
INSERT INTO tenant_usage (tenant, day, device_ms, attempts)
SELECT j.tenant, (now() AT TIME ZONE 'UTC')::date, $2, 1
FROM tasks t JOIN jobs j ON j.id = t.job_id
WHERE t.id = $1
ON CONFLICT (tenant, day) DO UPDATE
SET device_ms = tenant_usage.device_ms + EXCLUDED.device_ms,
    attempts = tenant_usage.attempts + 1
