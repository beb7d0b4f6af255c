-- Per model of ?1 (a JSON array of names) that some registered worker
-- serves: how many of its workers are live (seen after ?2, i.e. within two
-- leases, the rule claim.sql uses), how many of those are not
-- quarantined, and when one of them was seen last.
SELECT m.value AS model,
       sum(CASE WHEN w.last_seen_at > ?2 THEN 1 ELSE 0 END) AS live,
       sum(CASE WHEN w.last_seen_at > ?2 AND w.quarantined_at IS NULL
                THEN 1 ELSE 0 END) AS available,
       max(w.last_seen_at) AS last_seen_at
FROM workers w, json_each(w.models) AS m
WHERE m.value IN (SELECT value FROM json_each(?1))
GROUP BY m.value
ORDER BY m.value
