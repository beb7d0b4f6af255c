-- ?2: tasks that succeeded since this time count as recent.
-- `running`: a JSON array of the ids of the tasks each worker holds
-- leases on, oldest claim first.
SELECT w.id, w.name, w.device, w.models, w.loaded_models, w.registered_at,
       w.last_seen_at, w.consecutive_failures, w.quarantined_at, w.probation,
       w.recent_errors, w.capabilities, w.draining_at,
       (SELECT json_group_array(t.id) FROM
            (SELECT id FROM tasks WHERE worker_id = w.id AND state = 'running'
             ORDER BY started_at, id) AS t) AS running,
       (SELECT count(*) FROM tasks s
        WHERE s.worker_id = w.id AND s.state = 'succeeded' AND s.finished_at >= ?2) AS recent_succeeded
FROM workers w
ORDER BY w.last_seen_at DESC, w.rowid DESC LIMIT ?1
