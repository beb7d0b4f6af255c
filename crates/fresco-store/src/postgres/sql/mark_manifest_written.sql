-- Job $1's manifest is written as it stood at reopen count $2: a retry
-- since (a higher count) leaves it due again.
UPDATE jobs SET manifest_written_for = $2 WHERE id = $1
RETURNING id
