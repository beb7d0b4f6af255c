//! What the conformance suite needs around a dispatcher: the Redis server
//! `FRESCO_TEST_REDIS_URL` names (the variable `scripts/services.sh` writes
//! and `scripts/test.sh` sources), with a key prefix of each test's own, or
//! word that the Redis half is skipped when it is not set.

use uuid::Uuid;

/// The variable naming the test Redis server.
pub const REDIS_URL: &str = "FRESCO_TEST_REDIS_URL";

/// The test Redis server's URL and a key prefix no other test uses; `None`,
/// said loudly on stderr, when no server is configured.
pub fn redis_with_own_prefix(test: &str) -> Option<(String, String)> {
    let Ok(url) = std::env::var(REDIS_URL) else {
        eprintln!(
            "SKIPPED {test} on Redis: {REDIS_URL} is not set \
             (run scripts/test.sh, or `scripts/services.sh start && source .services/env`)"
        );
        return None;
    };
    Some((url, format!("conformance-{}", Uuid::new_v4().simple())))
}
