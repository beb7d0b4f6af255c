-- A NULL list of loaded models leaves the one known.
UPDATE workers SET last_seen_at = ?2, loaded_models = coalesce(?3, loaded_models)
WHERE id = ?1
