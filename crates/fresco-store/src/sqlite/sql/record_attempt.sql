-- ?2: the attempt succeeded; ?3: failures in a row that quarantine; ?4:
-- now in milliseconds. A failure (?2 false: the worker's fault) also joins
-- `recent_errors`, keeping the last ?9: task ?5, attempt ?6, message ?7,
-- kind ?8, at ?10 (now as RFC 3339 text). It quarantines the worker at
-- the threshold, or at once on probation; any counted attempt ends a
-- probation (success: back in service). The right-hand sides read the row
-- as it was, so `consecutive_failures + 1` is the run including this
-- failure; `newly_quarantined`: this failure quarantined it.
UPDATE workers SET
    consecutive_failures = CASE WHEN ?2 THEN 0 ELSE consecutive_failures + 1 END,
    quarantined_at = CASE
        WHEN NOT ?2 AND quarantined_at IS NULL
             AND (probation OR consecutive_failures + 1 >= ?3) THEN ?4
        ELSE quarantined_at END,
    probation = 0,
    recent_errors = CASE WHEN ?2 THEN recent_errors ELSE (
        SELECT json_group_array(json(e.value))
        FROM json_each(json_insert(recent_errors, '$[#]', json_object(
                 'task', ?5, 'attempt', ?6, 'message', ?7, 'kind', ?8, 'at', ?10))) AS e
        WHERE e.key > json_array_length(recent_errors) - ?9) END
WHERE id = ?1
RETURNING consecutive_failures, quarantined_at IS NOT NULL AS quarantined,
    coalesce(quarantined_at = ?4, 0) AS newly_quarantined, probation
