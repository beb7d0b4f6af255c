-- ?4, ?5: JSON arrays of model names; ?6: now; ?7: the capabilities of its
-- models, a JSON object keyed by model id; ?8: the worker token it
-- registers with. A worker registered with another token is left as it is
-- (no row). Registering again ends a drain.
INSERT INTO workers (id, name, device, models, loaded_models, registered_at,
    last_seen_at, capabilities, token_id)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8)
ON CONFLICT (id) DO UPDATE SET name = excluded.name, device = excluded.device,
    models = excluded.models, loaded_models = excluded.loaded_models,
    capabilities = excluded.capabilities, last_seen_at = excluded.last_seen_at,
    draining_at = NULL
WHERE workers.token_id IS excluded.token_id
