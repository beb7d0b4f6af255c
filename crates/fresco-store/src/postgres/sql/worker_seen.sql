-- A NULL list of loaded models leaves the one known.
UPDATE workers SET last_seen_at = now(),
    loaded_models = coalesce($2, loaded_models)
WHERE id = $1
