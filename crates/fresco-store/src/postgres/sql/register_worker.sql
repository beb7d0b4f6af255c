-- $6: the capabilities of its models, a JSON object keyed by model id; $7:
-- the worker token it registers with. A worker registered with another
-- token is left as it is (no row).
-- Registering again ends a drain.
INSERT INTO workers (id, name, device, models, loaded_models, capabilities, token_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (id) DO UPDATE SET name = $2, device = $3, models = $4,
    loaded_models = $5, capabilities = $6, last_seen_at = now(),
    draining_at = NULL
WHERE workers.token_id IS NOT DISTINCT FROM $7
