-- Puts every worker quarantined at least $1 seconds ago (the cool-down) on
-- probation: it may claim one probe task at a time.
UPDATE workers SET quarantined_at = NULL, probation = true
WHERE quarantined_at IS NOT NULL
  AND quarantined_at <= now() - make_interval(secs => $1)
RETURNING id
