//! The coordinator's tunables: the defaults ([`Settings::default`]) and the
//! checks every caller gets ([`Settings::validate`]), for the daemon,
//! `fresco dev` and tests.

use std::time::Duration;

use anyhow::ensure;

use fresco_core::Limits;
use fresco_store::Backoff;

use crate::authentication::Access;

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
    /// How long a worker stays quarantined before it goes on probation
    /// (one probe task: success returns it to service).
    pub quarantine_cooldown: Duration,
    /// How often `WatchJob` looks for changes.
    pub watch_interval: Duration,
    pub limits: Limits,
    /// Models accepted besides the built-in ones and those workers serve.
    pub extra_models: Vec<String>,
    /// The deadline of a job that sets none: its tasks still queued this
    /// long after submission fail (none: no deadline).
    pub queue_timeout: Option<Duration>,
    /// How often output objects of attempts that never recorded them are
    /// looked for and deleted (zero: never).
    pub sweep_interval: Duration,
    /// Finished jobs older than this are deleted with their objects, each
    /// `sweep_interval` (none: kept for ever).
    pub job_retention: Option<Duration>,
    /// How often finished jobs whose bucket manifest is due get it written
    /// (`{prefix}/{job}/manifest.jsonl`; zero: never).
    pub manifest_interval: Duration,
    /// Whether callers must present keys (the default) or the farm is
    /// served without them.
    pub access: Access,
    /// How often the task gauges are refreshed from the store (none: no
    /// metrics are served, so no gauges pass runs).
    pub metrics_interval: Option<Duration>,
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
            quarantine_cooldown: Duration::from_secs(300),
            watch_interval: Duration::from_millis(250),
            limits: Limits::default(),
            extra_models: Vec::new(),
            queue_timeout: None,
            sweep_interval: Duration::from_secs(60),
            job_retention: None,
            manifest_interval: Duration::from_secs(5),
            access: Access::Keys,
            metrics_interval: None,
        }
    }
}

impl Settings {
    /// Fails naming the first setting the coordinator cannot run with: a
    /// heartbeat of zero or above half the lease (a worker must get two
    /// heartbeats in before its lease runs out), a reaper, reconciler or
    /// `WatchJob` interval of zero, or a queue timeout above the longest
    /// deadline a job may set.
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(
            !self.heartbeat.is_zero(),
            "the heartbeat interval must be above zero"
        );
        ensure!(
            self.heartbeat * 2 <= self.lease,
            "--heartbeat-seconds ({}) must be at most half of --lease-seconds ({})",
            self.heartbeat.as_secs_f64(),
            self.lease.as_secs_f64()
        );
        for (what, interval) in [
            ("reap", self.reap_interval),
            ("reconcile", self.reconcile_interval),
            ("watch", self.watch_interval),
            (
                "metrics",
                self.metrics_interval.unwrap_or(Duration::from_secs(1)),
            ),
        ] {
            ensure!(
                !interval.is_zero(),
                "the {what} interval must be above zero"
            );
        }
        ensure!(
            self.quarantine_after >= 1,
            "quarantine must follow at least one failure"
        );
        if let Some(timeout) = self.queue_timeout {
            ensure!(
                timeout.as_secs() <= self.limits.max_deadline_seconds,
                "--queue-timeout-seconds ({}) must be at most {} (the longest deadline a job may set)",
                timeout.as_secs(),
                self.limits.max_deadline_seconds
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        Settings::default().validate().expect("defaults");
    }

    #[test]
    fn a_queue_timeout_above_the_longest_deadline_is_refused() {
        let settings = Settings {
            queue_timeout: Some(Duration::from_secs(31 * 24 * 3600)),
            ..Settings::default()
        };
        let err = settings.validate().expect_err("31 days").to_string();
        assert_eq!(
            err,
            "--queue-timeout-seconds (2678400) must be at most 2592000 (the longest deadline a job may set)"
        );
    }

    #[test]
    fn a_heartbeat_above_half_the_lease_is_refused() {
        let settings = Settings {
            lease: Duration::from_secs(10),
            heartbeat: Duration::from_secs(6),
            ..Settings::default()
        };
        let err = settings.validate().expect_err("6s of 10s").to_string();
        assert_eq!(
            err,
            "--heartbeat-seconds (6) must be at most half of --lease-seconds (10)"
        );
        let half = Settings {
            heartbeat: Duration::from_secs(5),
            ..settings
        };
        half.validate().expect("exactly half");
    }
}
