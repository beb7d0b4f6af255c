-- The output keys this very attempt recorded when it succeeded: a
-- completion reported again (its answer was lost) finds them here.
SELECT o.key FROM outputs o JOIN tasks t ON t.id = o.task_id
WHERE t.id = ?1 AND t.worker_id = ?2 AND t.attempt = ?3
  AND t.state = 'succeeded' AND o.attempt = ?3
ORDER BY o.idx
