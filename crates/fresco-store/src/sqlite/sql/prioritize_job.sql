UPDATE jobs SET priority = ?2 WHERE id = ?1 RETURNING paused
