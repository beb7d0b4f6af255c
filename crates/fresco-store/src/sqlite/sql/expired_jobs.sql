-- Finished jobs (no task queued or running) whose last task ended (or,
-- when none ever ended, which were created) before ?1 (now less the
-- retention, in ms), the oldest first, at most ?2: what the retention
-- pass deletes.
SELECT j.id FROM jobs j
WHERE NOT EXISTS (SELECT 1 FROM tasks t
                  WHERE t.job_id = j.id AND t.state IN ('queued', 'running'))
  AND coalesce((SELECT max(t.finished_at) FROM tasks t WHERE t.job_id = j.id),
               j.created_at) < ?1
ORDER BY j.created_at
LIMIT ?2
