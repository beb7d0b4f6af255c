-- Drains worker $1: from now on it claims nothing. Draining a draining
-- worker keeps the time it was first drained.
UPDATE workers SET draining_at = coalesce(draining_at, now())
WHERE id = $1
RETURNING id
