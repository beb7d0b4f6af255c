-- Revokes a credential; revoking it again keeps the first time. ?2: now.
UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?2)
WHERE id = ?1
RETURNING id, kind, tenant, role, name, created_at, revoked_at
