-- Every registered worker's capabilities for one model, live or not, the
-- most recently registered worker first.
SELECT c.value AS capabilities
FROM workers w, json_each(w.capabilities) AS c
WHERE c.key = ?1
ORDER BY w.registered_at DESC, w.rowid DESC
