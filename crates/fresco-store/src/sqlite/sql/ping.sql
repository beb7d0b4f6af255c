-- The health probe: the database answers.
SELECT 1
