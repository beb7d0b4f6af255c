-- What a submission of tenant $1 is checked against: its tasks queued now,
-- and the device time its attempts took today (UTC).
SELECT
    (SELECT count(*) FROM tasks t JOIN jobs j ON j.id = t.job_id
     WHERE j.tenant = $1 AND t.state = 'queued') AS queued,
    coalesce((SELECT device_ms FROM tenant_usage
              WHERE tenant = $1 AND day = (now() AT TIME ZONE 'UTC')::date), 0)
        AS device_ms_today
