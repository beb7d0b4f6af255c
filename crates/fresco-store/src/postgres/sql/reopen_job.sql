-- A retry queued job $1's failed tasks again: its manifest is due again
-- once it finishes (see manifests_due.sql).
UPDATE jobs SET reopened = reopened + 1 WHERE id = $1
