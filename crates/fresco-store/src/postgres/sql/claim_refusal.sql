-- Why claim.sql left task $1 to worker $2 (lease $3 seconds): whether the
-- worker is draining, whether it is quarantined; `probing`: it is on probation and runs a task
-- already (its probe); and `failed_here`: claim.sql's last clause, the
-- same words, on whether the worker already failed the task while another
-- live worker serving its model has not.
SELECT state,
       coalesce((SELECT draining_at IS NOT NULL FROM workers WHERE id = $2),
                false) AS draining,
       coalesce((SELECT quarantined_at IS NOT NULL FROM workers WHERE id = $2),
                false) AS quarantined,
       coalesce((SELECT q.probation AND EXISTS (
                            SELECT 1 FROM tasks r
                            WHERE r.worker_id = q.id AND r.state = 'running')
                 FROM workers q WHERE q.id = $2), false) AS probing,
       (errors @> jsonb_build_array(jsonb_build_object('worker', $2::TEXT))
        AND EXISTS (
            SELECT 1 FROM workers w
            WHERE w.id <> $2 AND w.quarantined_at IS NULL
              AND w.last_seen_at > now() - make_interval(secs => 2 * $3)
              AND tasks.model = ANY (w.models)
              AND NOT tasks.errors @> jsonb_build_array(
                  jsonb_build_object('worker', w.id::TEXT)))) AS failed_here
FROM tasks WHERE id = $1
