-- A new credential; no row when its id is taken. ?7: now.
INSERT INTO api_keys (id, kind, tenant, role, name, secret_sha256, created_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
ON CONFLICT (id) DO NOTHING
RETURNING id, kind, tenant, role, name, created_at, revoked_at
