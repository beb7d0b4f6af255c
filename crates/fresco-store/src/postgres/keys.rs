//! Postgres credentials: API keys and worker tokens (only their digests),
//! looked up by id on every call, listed and revoked; the worker token a
//! worker registered with.

use fresco_core::WorkerId;

use super::PgStore;
use crate::error::{Result, StoreError};
use crate::records::{ApiKey, KeyScope, NewApiKey, StoredKey};
use crate::rows::{Columns, api_key, stored_key};

/// The `kind, tenant, role` columns of a scope.
fn scope_columns(scope: &KeyScope) -> (&'static str, Option<&str>, Option<&'static str>) {
    match scope {
        KeyScope::Client { tenant, role } => ("client", Some(tenant), Some(role.as_str())),
        KeyScope::Worker => ("worker", None, None),
    }
}

pub(super) async fn create_api_key(store: &PgStore, key: &NewApiKey) -> Result<ApiKey> {
    let (kind, tenant, role) = scope_columns(&key.scope);
    let row = sqlx::query(include_str!("sql/insert_api_key.sql"))
        .bind(&key.id)
        .bind(kind)
        .bind(tenant)
        .bind(role)
        .bind(&key.name)
        .bind(key.secret_sha256.as_slice())
        .fetch_optional(&store.pool)
        .await?;
    match row {
        Some(row) => api_key(&row),
        None => Err(StoreError::Conflict(format!("key id {} is taken", key.id))),
    }
}

pub(super) async fn api_key_by_id(store: &PgStore, id: &str) -> Result<Option<StoredKey>> {
    let row = sqlx::query(include_str!("sql/get_api_key.sql"))
        .bind(id)
        .fetch_optional(&store.pool)
        .await?;
    row.as_ref().map(stored_key).transpose()
}

pub(super) async fn list_api_keys(store: &PgStore) -> Result<Vec<ApiKey>> {
    let rows = sqlx::query(include_str!("sql/list_api_keys.sql"))
        .fetch_all(&store.pool)
        .await?;
    rows.iter().map(api_key).collect()
}

pub(super) async fn revoke_api_key(store: &PgStore, id: &str) -> Result<ApiKey> {
    let row = sqlx::query(include_str!("sql/revoke_api_key.sql"))
        .bind(id)
        .fetch_optional(&store.pool)
        .await?;
    match row {
        Some(row) => api_key(&row),
        None => Err(StoreError::NotFound(format!("key {id}"))),
    }
}

pub(super) async fn worker_token(store: &PgStore, id: WorkerId) -> Result<Option<String>> {
    let row = sqlx::query(include_str!("sql/worker_token.sql"))
        .bind(id.0)
        .fetch_optional(&store.pool)
        .await?;
    match row {
        Some(row) => row.optional_text("token_id"),
        None => Err(StoreError::NotFound(format!("worker {id}"))),
    }
}
