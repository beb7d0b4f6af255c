-- The recorded outputs of job $1 in task then image order: those whose
-- keys are in $2, or every one when $2 is empty.
SELECT o.task_id, o.idx, o.key, o.width, o.height, o.seed, o.bytes, o.sha256
FROM outputs o JOIN tasks t ON t.id = o.task_id
WHERE t.job_id = $1 AND (cardinality($2::TEXT[]) = 0 OR o.key = ANY($2))
ORDER BY t.idx, o.idx
