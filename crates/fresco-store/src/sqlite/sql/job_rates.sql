-- Per job, its tasks that succeeded since ?2: how many, the images they
-- made, and when the first of them started (a job's recent throughput).
-- ?1: the job ids as a JSON array.
SELECT job_id, count(*) AS ended, coalesce(sum(n), 0) AS images,
       min(started_at) AS first_started
FROM tasks
WHERE job_id IN (SELECT value FROM json_each(?1)) AND finished_at >= ?2
  AND state = 'succeeded'
GROUP BY job_id
