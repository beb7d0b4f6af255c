-- Every credential, oldest first, without digests.
SELECT id, kind, tenant, role, name, created_at, revoked_at
FROM api_keys ORDER BY created_at, id
