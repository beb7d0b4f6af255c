-- The recorded outputs of job ?1 in task then image order: those whose
-- keys are in ?2 (a JSON array), or every one when ?2 is empty.
SELECT o.task_id, o.idx, o.key, o.width, o.height, o.seed, o.bytes, o.sha256
FROM outputs o JOIN tasks t ON t.id = o.task_id
WHERE t.job_id = ?1
  AND (json_array_length(?2) = 0 OR o.key IN (SELECT value FROM json_each(?2)))
ORDER BY t.idx, o.idx
