//! What every fresco binary sets up the same way: structured logs
//! ([`init_tracing`], `--log-format text|json`, filter from `RUST_LOG`), a
//! shutdown token cancelled by SIGINT or SIGTERM ([`shutdown_on_signals`]),
//! and the Prometheus endpoint of `--metrics-listen`.
//!
//! - [`metrics`]: the exporter: [`metrics::serve_metrics`] and the buckets
//!   every duration histogram shares.

pub mod metrics;

use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the global subscriber: to stderr, filtered by `RUST_LOG`
/// (default `info`).
pub fn init_tracing(format: LogFormat) {
    init_tracing_with_default(format, "info");
}

/// Like [`init_tracing`], with `default_filter` where `RUST_LOG` is unset.
pub fn init_tracing_with_default(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Err(err) = result {
        eprintln!("logging was already set up: {err}");
    }
}

/// A token cancelled on the first SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received");
        cancel.cancel();
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut interrupt), Ok(mut terminate)) => {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        _ => {
            if let Err(err) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %err, "cannot listen for shutdown signals");
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    if let Err(err) = tokio::signal::ctrl_c().await {
        tracing::error!(error = %err, "cannot listen for shutdown signals");
        std::future::pending::<()>().await;
    }
}
