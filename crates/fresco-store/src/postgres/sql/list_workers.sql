-- $2: tasks that succeeded since this time count as recent.
SELECT w.id, w.name, w.device, w.models, w.loaded_models, w.registered_at,
       w.last_seen_at, w.consecutive_failures, w.quarantined_at, w.probation,
       w.recent_errors, w.capabilities, w.draining_at,
       coalesce(array_agg(t.id ORDER BY t.started_at, t.id)
                FILTER (WHERE t.id IS NOT NULL), '{}') AS running,
       (SELECT count(*) FROM tasks s
        WHERE s.worker_id = w.id AND s.state = 'succeeded' AND s.finished_at >= $2) AS recent_succeeded
FROM workers w LEFT JOIN tasks t ON t.worker_id = w.id AND t.state = 'running'
GROUP BY w.id
ORDER BY w.last_seen_at DESC, w.id LIMIT $1
