-- ?2: the attempt succeeded; ?3: failures in a row that quarantine; ?4:
-- now. The right-hand sides read the row as it was, so
-- `consecutive_failures + 1` is the run including this failure.
UPDATE workers SET
    consecutive_failures = CASE WHEN ?2 THEN 0 ELSE consecutive_failures + 1 END,
    quarantined_at = CASE
        WHEN NOT ?2 AND quarantined_at IS NULL
             AND consecutive_failures + 1 >= ?3 THEN ?4
        ELSE quarantined_at END
WHERE id = ?1
RETURNING quarantined_at IS NOT NULL AS quarantined
