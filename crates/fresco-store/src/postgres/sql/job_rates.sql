-- Per job, its tasks that succeeded since $2: how many, the images they
-- made, and when the first of them started (a job's recent throughput).
SELECT job_id, count(*) AS ended, coalesce(sum(n), 0)::BIGINT AS images,
       min(started_at) AS first_started
FROM tasks
WHERE job_id = ANY($1) AND finished_at >= $2 AND state = 'succeeded'
GROUP BY job_id
