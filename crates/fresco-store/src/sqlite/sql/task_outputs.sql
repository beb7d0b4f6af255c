-- ?1: the task ids as a JSON array.
SELECT task_id, idx, key, width, height, seed, bytes, sha256 FROM outputs
WHERE task_id IN (SELECT value FROM json_each(?1)) ORDER BY task_id, idx
