-- ?4, ?5: JSON arrays of model names; ?6: now.
INSERT INTO workers (id, name, device, models, loaded_models, registered_at,
    last_seen_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
ON CONFLICT (id) DO UPDATE SET name = excluded.name, device = excluded.device,
    models = excluded.models, loaded_models = excluded.loaded_models,
    last_seen_at = excluded.last_seen_at
