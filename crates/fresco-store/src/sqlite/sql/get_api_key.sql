-- One credential with its digest, for authentication.
SELECT id, kind, tenant, role, name, created_at, revoked_at, secret_sha256
FROM api_keys WHERE id = ?1
