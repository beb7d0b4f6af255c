-- $2: the attempt succeeded; $3: failures in a row that quarantine. A
-- failure ($2 false: the worker's fault) also joins `recent_errors`,
-- keeping the last $8: task $4, attempt $5, message $6, kind $7. It
-- quarantines the worker at the threshold, or at once on probation; any
-- counted attempt ends a probation (success: back in service). The
-- right-hand sides read the row as it was, so `consecutive_failures + 1`
-- is the run including this failure; `newly_quarantined`: this failure
-- quarantined it (now() is the statement's transaction time).
UPDATE workers SET
    consecutive_failures = CASE WHEN $2 THEN 0 ELSE consecutive_failures + 1 END,
    quarantined_at = CASE
        WHEN NOT $2 AND quarantined_at IS NULL
             AND (probation OR consecutive_failures + 1 >= $3) THEN now()
        ELSE quarantined_at END,
    probation = false,
    recent_errors = CASE WHEN $2 THEN recent_errors ELSE (
        SELECT coalesce(jsonb_agg(e ORDER BY i), '[]'::JSONB)
        FROM jsonb_array_elements(recent_errors || jsonb_build_array(jsonb_build_object(
                 'task', $4::TEXT, 'attempt', $5::INT, 'message', $6::TEXT,
                 'kind', $7::TEXT, 'at', now())))
             WITH ORDINALITY AS t(e, i)
        WHERE i > jsonb_array_length(recent_errors) + 1 - $8) END
WHERE id = $1
RETURNING consecutive_failures, quarantined_at IS NOT NULL AS quarantined,
    coalesce(quarantined_at = now(), false) AS newly_quarantined, probation
