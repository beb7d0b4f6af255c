INSERT INTO workers (id, name, device, models, loaded_models)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (id) DO UPDATE SET name = $2, device = $3, models = $4,
    loaded_models = $5, last_seen_at = now()
