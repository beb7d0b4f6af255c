SELECT task_id, idx, key, width, height, seed, bytes, sha256 FROM outputs
WHERE task_id = ANY($1) ORDER BY task_id, idx
