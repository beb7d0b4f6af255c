UPDATE jobs SET paused = ?2 WHERE id = ?1 RETURNING id
