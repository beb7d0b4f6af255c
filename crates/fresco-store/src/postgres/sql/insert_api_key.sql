-- A new credential; no row when its id is taken.
INSERT INTO api_keys (id, kind, tenant, role, name, secret_sha256)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO NOTHING
RETURNING id, kind, tenant, role, name, created_at, revoked_at
