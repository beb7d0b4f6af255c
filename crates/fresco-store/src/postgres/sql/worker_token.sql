-- The worker token a worker registered with (NULL: none, on a farm served
-- without keys).
SELECT token_id FROM workers WHERE id = $1
