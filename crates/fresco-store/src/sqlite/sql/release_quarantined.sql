-- Puts every worker quarantined before ?1 (now minus the cool-down, in
-- milliseconds) on probation: it may claim one probe task at a time.
UPDATE workers SET quarantined_at = NULL, probation = 1
WHERE quarantined_at IS NOT NULL AND quarantined_at <= ?1
RETURNING id
