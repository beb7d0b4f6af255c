-- The job of a recorded output.
SELECT t.job_id FROM outputs o JOIN tasks t ON t.id = o.task_id WHERE o.key = ?1
