-- Leases queued task $1 to worker $2 for $3 seconds, bumping `attempt`,
-- the fencing token every later write of this attempt carries. All the
-- conditions are in this one statement, so two claims racing for the task
-- cannot both win. Not claimed: a task of a paused job, one still waiting
-- out its backoff, a claim by a draining
-- or quarantined worker or by a worker on
-- probation that runs a task already (its probe: one at a time), and a
-- task this worker already failed while another live worker (seen within
-- two leases, not quarantined, serving the model) has not. The last two
-- clauses are repeated in claim_refusal.sql, which explains a refused
-- claim: keep the two alike.
UPDATE tasks SET state = 'running', attempt = attempt + 1, worker_id = $2,
    lease_expires_at = now() + make_interval(secs => $3), started_at = now(),
    progress_step = 0
WHERE id = $1 AND state = 'queued'
  AND NOT (SELECT paused FROM jobs WHERE jobs.id = tasks.job_id)
  AND (not_before IS NULL OR not_before <= now())
  AND NOT EXISTS (SELECT 1 FROM workers q
                  WHERE q.id = $2
                    AND (q.draining_at IS NOT NULL
                         OR q.quarantined_at IS NOT NULL
                         OR (q.probation AND EXISTS (
                             SELECT 1 FROM tasks r
                             WHERE r.worker_id = q.id AND r.state = 'running'))))
  AND NOT (errors @> jsonb_build_array(jsonb_build_object('worker', $2::TEXT))
           AND EXISTS (
               SELECT 1 FROM workers w
               WHERE w.id <> $2 AND w.quarantined_at IS NULL
                 AND w.last_seen_at > now() - make_interval(secs => 2 * $3)
                 AND tasks.model = ANY (w.models)
                 AND NOT tasks.errors @> jsonb_build_array(
                     jsonb_build_object('worker', w.id::TEXT))))
RETURNING id, job_id, idx, model, prompt, negative_prompt, seed, steps, width, height,
    guidance, n, sampler, schedule, state, attempt, worker_id, progress_step,
    lease_expires_at, errors, coordinates::TEXT AS coordinates, created_at, started_at, finished_at,
    weights_sha256, device_ms, worker_name, worker_device,
    -- When the task became claimable (its submission or the end of its
    -- backoff) and when it was claimed: the dispatch lag.
    GREATEST(created_at, COALESCE(not_before, created_at)) AS due_at, started_at AS claimed_at
