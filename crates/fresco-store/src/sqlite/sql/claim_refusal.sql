-- Why claim.sql left task ?1 to worker ?2 (?3: now plus the lease, ?4:
-- now): whether the worker is draining, whether it is quarantined; `probing`: it is on probation
-- and runs a task already (its probe); and `failed_here`: claim.sql's last
-- clause, the same words, on whether the worker already failed the task
-- while another live worker serving its model has not.
SELECT state,
       coalesce((SELECT draining_at IS NOT NULL FROM workers WHERE id = ?2), 0)
           AS draining,
       coalesce((SELECT quarantined_at IS NOT NULL FROM workers WHERE id = ?2), 0)
           AS quarantined,
       coalesce((SELECT q.probation AND EXISTS (
                            SELECT 1 FROM tasks r
                            WHERE r.worker_id = q.id AND r.state = 'running')
                 FROM workers q WHERE q.id = ?2), 0) AS probing,
       (EXISTS (SELECT 1 FROM json_each(tasks.errors) e
                WHERE json_extract(e.value, '$.worker') = ?2)
        AND EXISTS (
            SELECT 1 FROM workers w
            WHERE w.id <> ?2 AND w.quarantined_at IS NULL
              AND w.last_seen_at > ?4 - 2 * (?3 - ?4)
              AND EXISTS (SELECT 1 FROM json_each(w.models) m WHERE m.value = tasks.model)
              AND NOT EXISTS (SELECT 1 FROM json_each(tasks.errors) e
                              WHERE json_extract(e.value, '$.worker') = w.id))) AS failed_here
FROM tasks WHERE id = ?1
