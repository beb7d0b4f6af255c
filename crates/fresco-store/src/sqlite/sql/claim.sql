-- Leases queued task ?1 to worker ?2 until ?3 (now ?4 plus the lease),
-- bumping `attempt`, the fencing token every later write of this attempt
-- carries. All the conditions are in this one statement, so two claims
-- racing for the task cannot both win. Not claimed: a task of a paused
-- job, one still waiting out its backoff, a claim by a draining
-- or quarantined worker
-- or by a worker on probation that runs a task already (its probe: one at
-- a time), and a task this worker already failed while another live
-- worker (seen since ?4 - 2·(?3 - ?4), i.e. within two leases; not
-- quarantined; serving the model) has not. The last two clauses are
-- repeated in claim_refusal.sql, which explains a refused claim: keep the
-- two alike.
UPDATE tasks SET state = 'running', attempt = attempt + 1, worker_id = ?2,
    lease_expires_at = ?3, started_at = ?4, progress_step = 0
WHERE id = ?1 AND state = 'queued'
  AND NOT (SELECT paused FROM jobs WHERE jobs.id = tasks.job_id)
  AND (not_before IS NULL OR not_before <= ?4)
  AND NOT EXISTS (SELECT 1 FROM workers q
                  WHERE q.id = ?2
                    AND (q.draining_at IS NOT NULL
                         OR q.quarantined_at IS NOT NULL
                         OR (q.probation AND EXISTS (
                             SELECT 1 FROM tasks r
                             WHERE r.worker_id = q.id AND r.state = 'running'))))
  AND NOT (EXISTS (SELECT 1 FROM json_each(tasks.errors) e
                   WHERE json_extract(e.value, '$.worker') = ?2)
           AND EXISTS (
               SELECT 1 FROM workers w
               WHERE w.id <> ?2 AND w.quarantined_at IS NULL
                 AND w.last_seen_at > ?4 - 2 * (?3 - ?4)
                 AND EXISTS (SELECT 1 FROM json_each(w.models) m WHERE m.value = tasks.model)
                 AND NOT EXISTS (SELECT 1 FROM json_each(tasks.errors) e
                                 WHERE json_extract(e.value, '$.worker') = w.id)))
RETURNING id, job_id, idx, model, prompt, negative_prompt, seed, steps, width, height,
    guidance, n, sampler, schedule, state, attempt, worker_id, progress_step,
    lease_expires_at, errors, coordinates, created_at, started_at, finished_at,
    weights_sha256, device_ms, worker_name, worker_device,
    -- When the task became claimable (its submission or the end of its
    -- backoff) and when it was claimed: the dispatch lag.
    max(created_at, coalesce(not_before, created_at)) AS due_at, started_at AS claimed_at
