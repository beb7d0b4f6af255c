-- Every job belongs to the tenant of the key that submitted it ('default'
-- for a farm served without keys). A request id is one tenant's own: two
-- tenants may use the same one.
ALTER TABLE jobs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE jobs DROP CONSTRAINT jobs_request_id_key;
CREATE UNIQUE INDEX jobs_by_tenant_request_id ON jobs (tenant, request_id)
    WHERE request_id IS NOT NULL;
CREATE INDEX jobs_by_tenant ON jobs (tenant, created_at DESC);

-- Credentials: client keys (a tenant and a role) and worker tokens. Only
-- the SHA-256 of the secret is kept; the secret is shown once.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('client', 'worker')),
    tenant TEXT,
    role TEXT CHECK (role IN ('admin', 'submitter', 'viewer')),
    name TEXT NOT NULL DEFAULT '',
    secret_sha256 BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at TIMESTAMPTZ,
    CHECK ((kind = 'client') = (tenant IS NOT NULL AND role IS NOT NULL))
);

-- The worker token a worker registered with: calls naming that worker
-- must carry the same token.
ALTER TABLE workers ADD COLUMN token_id TEXT;

-- A tenant's share of the farm and its limits (NULL: none). A tenant with
-- no row has weight 1 and no limits.
CREATE TABLE tenants (
    name TEXT PRIMARY KEY,
    weight INT NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 10000),
    max_queued_tasks BIGINT CHECK (max_queued_tasks >= 0),
    max_running_tasks BIGINT CHECK (max_running_tasks >= 0),
    max_device_seconds_per_day BIGINT CHECK (max_device_seconds_per_day >= 0)
);

-- Device time the workers measured sampling a tenant's tasks (every
-- attempt, failed ones too), per UTC day.
CREATE TABLE tenant_usage (
    tenant TEXT NOT NULL,
    day DATE NOT NULL,
    device_ms BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, day)
);
