-- Puts worker $1 on probation now, if it is quarantined.
UPDATE workers SET quarantined_at = NULL, probation = true
WHERE id = $1 AND quarantined_at IS NOT NULL
RETURNING id
