//! The coordinator's tunables.

use std::time::Duration;

use fresco_core::Limits;
use fresco_store::Backoff;

#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a claim or heartbeat keeps a task leased.
    pub lease: Duration,
    /// How often workers are asked to heartbeat.
    pub heartbeat: Duration,
    /// How often expired leases are looked for.
    pub reap_interval: Duration,
    /// How often the dispatch queues are checked against Postgres.
    pub reconcile_interval: Duration,
    /// The Redis key prefix of the dispatch queues.
    pub queue_prefix: String,
    /// How long a failed task waits before it runs again.
    pub retry_backoff: Backoff,
    /// Failed attempts in a row after which a worker is quarantined.
    pub quarantine_after: u32,
    /// How often `WatchJob` looks for changes.
    pub watch_interval: Duration,
    pub limits: Limits,
    /// Models accepted besides the built-in ones and those workers serve.
    pub extra_models: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(5),
            reap_interval: Duration::from_secs(2),
            reconcile_interval: Duration::from_secs(5),
            queue_prefix: "fresco".into(),
            retry_backoff: Backoff {
                base: Duration::from_secs(2),
                max: Duration::from_secs(60),
            },
            quarantine_after: 5,
            watch_interval: Duration::from_millis(250),
            limits: Limits::default(),
            extra_models: Vec::new(),
        }
    }
}
