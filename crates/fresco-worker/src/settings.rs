//! The worker's settings: one constructor with the defaults, used by the
//! daemon, `fresco dev` and tests, and the checks every caller gets.

use std::sync::Arc;
use std::time::Duration;

use anyhow::ensure;
use fresco_dispatch::Dispatch;
use fresco_pipeline::ModelRegistry;

/// Where the worker pops task ids from.
#[derive(Clone)]
pub enum DispatchSource {
    /// Redis at this URL, under the key prefix the coordinator names.
    Redis { url: String },
    /// Queues shared with a coordinator in the same process (`fresco dev`).
    InProcess(Arc<dyn Dispatch>),
}

impl std::fmt::Debug for DispatchSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DispatchSource::Redis { url } => f.debug_struct("Redis").field("url", url).finish(),
            DispatchSource::InProcess(_) => f.write_str("InProcess"),
        }
    }
}

/// What the worker daemon is told at start; build with [`Settings::new`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// The coordinator's gRPC endpoint, e.g. `http://127.0.0.1:50051`.
    pub coordinator: String,
    /// The worker token sent with every call (none: a farm served without
    /// keys).
    pub token: Option<String>,
    pub dispatch: DispatchSource,
    /// Output storage URL (s3://bucket/prefix or file:///dir).
    pub storage: String,
    /// A name for logs and listings.
    pub name: String,
    /// Models this worker serves.
    pub models: Vec<String>,
    /// Where model folders are found besides the built-in models.
    pub registry: ModelRegistry,
    /// Bytes of model weights kept loaded between tasks.
    pub cache_budget_bytes: u64,
    /// The device models sample on.
    pub device: candle_core::Device,
    /// How long a shutdown waits for the running task before giving it back.
    pub shutdown_grace: Duration,
    /// How long one pop waits for work.
    pub pop_timeout: Duration,
    /// How long a finished result is held while its report keeps failing.
    pub report_patience: Duration,
    /// TLS files for an `https://` coordinator: the CA to trust and this
    /// worker's client certificate (none: the system's roots, no
    /// certificate).
    pub tls: fresco_tls::ClientFiles,
}

impl Settings {
    /// How long a shutdown waits for the running task, unless told otherwise.
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
    /// How long one pop waits for work, unless told otherwise.
    pub const DEFAULT_POP_TIMEOUT: Duration = Duration::from_secs(2);
    /// How long a finished result is held while its report keeps failing,
    /// unless told otherwise.
    pub const DEFAULT_REPORT_PATIENCE: Duration = Duration::from_secs(300);
    /// Bytes of model weights kept loaded, unless told otherwise.
    pub const DEFAULT_CACHE_BUDGET_BYTES: u64 = 4 << 30;

    /// A worker of `coordinator` popping from `dispatch`, writing to
    /// `storage`, serving `models` of `registry` on `device`; named after the
    /// host and process, with no token, the default budget, grace, pop
    /// timeout and report patience (change the fields to override them).
    pub fn new(
        coordinator: impl Into<String>,
        dispatch: DispatchSource,
        storage: impl Into<String>,
        registry: ModelRegistry,
        models: Vec<String>,
        device: candle_core::Device,
    ) -> Self {
        Self {
            coordinator: coordinator.into(),
            token: None,
            dispatch,
            storage: storage.into(),
            name: default_name(),
            models,
            registry,
            cache_budget_bytes: Self::DEFAULT_CACHE_BUDGET_BYTES,
            device,
            shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
            pop_timeout: Self::DEFAULT_POP_TIMEOUT,
            report_patience: Self::DEFAULT_REPORT_PATIENCE,
            tls: fresco_tls::ClientFiles::default(),
        }
    }

    /// Fails naming the first setting a worker cannot run with.
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(
            !self.coordinator.is_empty(),
            "the coordinator endpoint is empty"
        );
        ensure!(!self.storage.is_empty(), "the output storage URL is empty");
        ensure!(!self.name.is_empty(), "the worker name is empty");
        ensure!(!self.models.is_empty(), "the worker serves no model");
        ensure!(
            !self.pop_timeout.is_zero(),
            "the pop timeout must be above zero"
        );
        Ok(())
    }
}

/// The host name and process id, e.g. `gpu-3-4242` (`worker-4242` when the
/// host name cannot be read).
pub fn default_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "worker".into());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::new(
            "http://127.0.0.1:50051",
            DispatchSource::Redis {
                url: "redis://127.0.0.1:6379".into(),
            },
            "file:///tmp/out",
            ModelRegistry::default(),
            vec!["tiny-random-dit".into()],
            candle_core::Device::Cpu,
        )
    }

    #[test]
    fn the_defaults_are_valid() {
        let s = settings();
        s.validate().expect("defaults");
        assert_eq!(s.shutdown_grace, Duration::from_secs(30));
        assert_eq!(s.pop_timeout, Duration::from_secs(2));
        assert_eq!(s.report_patience, Duration::from_secs(300));
        assert!(s.name.ends_with(&format!("-{}", std::process::id())));
    }

    #[test]
    fn what_a_worker_cannot_run_with_is_named() {
        let no_models = Settings {
            models: Vec::new(),
            ..settings()
        };
        let err = no_models.validate().expect_err("no models").to_string();
        assert!(err.contains("no model"), "{err}");
        let no_wait = Settings {
            pop_timeout: Duration::ZERO,
            ..settings()
        };
        let err = no_wait
            .validate()
            .expect_err("zero pop timeout")
            .to_string();
        assert!(err.contains("pop timeout"), "{err}");
    }
}
