-- Milliseconds can tie: the rowid is the order of insertion.
-- ?4: labels every job must carry, as a JSON object ('{}': any job).
-- ?5: a job-level state (NULL: any), as fresco_core::JobState names it.
-- ?6: a model (NULL: any).
-- ?7: lower-cased text the job's id starts with, or its name or a task's prompt contains (NULL: any).
-- ?8: list only jobs after this one in the order below (NULL: from the newest).
SELECT j.id, j.name, j.owner, j.model, j.priority, j.max_attempts, j.task_count, j.created_at,
       j.paused, j.deadline, j.tenant, j.labels, j.sweep
FROM jobs j
WHERE (?2 IS NULL OR j.owner = ?2) AND (?3 IS NULL OR j.tenant = ?3)
  AND NOT EXISTS (SELECT 1 FROM json_each(?4) f
                  WHERE NOT EXISTS (SELECT 1 FROM json_each(j.labels) l
                                    WHERE l.key = f.key AND l.value = f.value))
  AND (?6 IS NULL OR j.model = ?6)
  AND (?7 IS NULL OR instr(lower(j.id), ?7) = 1 OR instr(lower(j.name), ?7) > 0
       OR EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND instr(lower(t.prompt), ?7) > 0))
  AND (?8 IS NULL OR (j.created_at, j.rowid) < (SELECT a.created_at, a.rowid FROM jobs a WHERE a.id = ?8))
  AND (?5 IS NULL OR CASE ?5
    WHEN 'active' THEN EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state IN ('queued', 'running'))
    WHEN 'queued' THEN NOT j.paused AND EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'queued')
                       AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'running')
    WHEN 'running' THEN EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'running')
    WHEN 'paused' THEN j.paused AND EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state IN ('queued', 'running'))
    WHEN 'finished' THEN NOT EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state IN ('queued', 'running'))
    WHEN 'succeeded' THEN NOT EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state <> 'succeeded')
    WHEN 'failed' THEN NOT EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state IN ('queued', 'running'))
                       AND EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'failed')
    WHEN 'cancelled' THEN NOT EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state IN ('queued', 'running', 'failed'))
                          AND EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'cancelled')
    ELSE FALSE END)
ORDER BY j.created_at DESC, j.rowid DESC LIMIT ?1
