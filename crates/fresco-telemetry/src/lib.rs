//! What every fresco binary sets up the same way: structured logs
//! ([`init_tracing`], `--log-format text|json`, filter from `RUST_LOG`),
//! optionally exported as traces over OTLP ([`init_tracing_exported`]), a
//! shutdown token cancelled by SIGINT or SIGTERM ([`shutdown_on_signals`]),
//! and the Prometheus endpoint of `--metrics-listen`.
//!
//! - [`traces`]: OTLP export and the W3C trace context a task carries.
//! - [`metrics`]: the exporter: [`metrics::serve_metrics`] and the buckets
//!   every duration histogram shares.

pub mod metrics;
pub mod traces;

use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

pub use traces::TraceExport;

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
    let logs = log_layer(format);
    if let Err(err) = Registry::default()
        .with(logs)
        .with(filter(default_filter))
        .try_init()
    {
        eprintln!("logging was already set up: {err}");
    }
}

/// Like [`init_tracing_with_default`], and with an OTLP endpoint (see
/// [`traces::endpoint`]) every span is also exported as `service`. Must be
/// called inside a Tokio runtime; keep the returned [`TraceExport`] until
/// the binary stops (dropping it flushes the last spans).
pub fn init_tracing_exported(
    format: LogFormat,
    default_filter: &str,
    otlp_endpoint: Option<&str>,
    service: &'static str,
) -> anyhow::Result<TraceExport> {
    let Some(endpoint) = otlp_endpoint else {
        init_tracing_with_default(format, default_filter);
        return Ok(TraceExport::default());
    };
    let (spans, export) = traces::otlp_layer(endpoint, service)?;
    Registry::default()
        .with(log_layer(format))
        .with(spans)
        .with(filter(default_filter))
        .try_init()
        .map_err(|err| anyhow::anyhow!("logging was already set up: {err}"))?;
    tracing::info!(endpoint, service, "exporting traces over OTLP");
    Ok(export)
}

fn filter(default_filter: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter))
}

/// Log lines to stderr in `format`.
fn log_layer(format: LogFormat) -> Box<dyn Layer<Registry> + Send + Sync> {
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => layer.boxed(),
        LogFormat::Json => layer.json().flatten_event(true).boxed(),
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
