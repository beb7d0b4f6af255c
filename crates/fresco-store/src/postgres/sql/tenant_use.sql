-- What tenant $1 uses now: its tasks queued and running, and the device
-- time its attempts took, today (UTC) and in all.
SELECT
    (SELECT count(*) FROM tasks t JOIN jobs j ON j.id = t.job_id
     WHERE j.tenant = $1 AND t.state = 'queued') AS queued,
    (SELECT count(*) FROM tasks t JOIN jobs j ON j.id = t.job_id
     WHERE j.tenant = $1 AND t.state = 'running') AS running,
    coalesce((SELECT device_ms FROM tenant_usage
              WHERE tenant = $1 AND day = (now() AT TIME ZONE 'UTC')::date), 0)
        AS device_ms_today,
    coalesce((SELECT attempts FROM tenant_usage
              WHERE tenant = $1 AND day = (now() AT TIME ZONE 'UTC')::date), 0)
        AS attempts_today,
    coalesce((SELECT sum(device_ms) FROM tenant_usage WHERE tenant = $1), 0)::BIGINT
        AS device_ms_total,
    coalesce((SELECT sum(attempts) FROM tenant_usage WHERE tenant = $1), 0)::BIGINT
        AS attempts_total
