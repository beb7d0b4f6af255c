//! What the conformance suite needs around a store: a Postgres database of
//! each test's own on the server `FRESCO_TEST_DATABASE_URL` names (the
//! variable `scripts/services.sh` writes and `scripts/test.sh` sources), or
//! word that the Postgres half is skipped when it is not set.

use uuid::Uuid;

/// The variable naming the test Postgres server (its `postgres` database).
pub const DATABASE_URL: &str = "FRESCO_TEST_DATABASE_URL";

/// A fresh database on the test server, as a URL; `None`, said loudly on
/// stderr, when no server is configured.
pub async fn fresh_database(test: &str) -> Option<String> {
    let Ok(server) = std::env::var(DATABASE_URL) else {
        eprintln!(
            "SKIPPED {test} on Postgres: {DATABASE_URL} is not set \
             (run scripts/test.sh, or `scripts/services.sh start && source .services/env`)"
        );
        return None;
    };
    let name = format!("fresco_test_{}", Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test Postgres server {server}: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .expect("creating a test database");
    admin.close().await;
    let (base, _) = server
        .rsplit_once('/')
        .unwrap_or_else(|| panic!("{DATABASE_URL} has no database path: {server}"));
    Some(format!("{base}/{name}"))
}
