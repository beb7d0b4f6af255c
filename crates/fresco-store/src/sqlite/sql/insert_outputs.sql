-- One output; a completion runs it once per output, in its transaction.
INSERT INTO outputs (task_id, attempt, idx, key, width, height, seed, bytes, sha256)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
