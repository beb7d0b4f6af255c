SELECT 1 FROM outputs WHERE key = ?1
