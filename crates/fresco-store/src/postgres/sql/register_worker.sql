-- $6: the capabilities of its models, a JSON object keyed by model id.
INSERT INTO workers (id, name, device, models, loaded_models, capabilities)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE SET name = $2, device = $3, models = $4,
    loaded_models = $5, capabilities = $6, last_seen_at = now()
