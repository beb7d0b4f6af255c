//! `fresco-worker`: renders tasks for a fresco coordinator.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use fresco_telemetry::LogFormat;
use fresco_worker::Settings;
use fresco_worker::device::{default_cache_budget, parse_device, parse_dtype};
use fresco_worker::models::{model_registry, served_models};
use fresco_worker::settings::DispatchSource;

/// Pops tasks from Redis, claims them through the coordinator, renders them
/// and uploads the PNGs. Every flag also reads `FRESCO_<FLAG>`, but
/// `--metrics-listen` reads `FRESCO_WORKER_METRICS_LISTEN` (a coordinator
/// on the same host reads `FRESCO_METRICS_LISTEN`).
#[derive(Debug, Parser)]
#[command(name = "fresco-worker", version)]
struct Args {
    /// The coordinator's gRPC endpoint.
    #[arg(
        long,
        env = "FRESCO_COORDINATOR",
        default_value = "http://127.0.0.1:50051"
    )]
    coordinator: String,
    /// Redis URL of the dispatch queues.
    #[arg(
        long,
        env = "FRESCO_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
    /// Output storage: s3://bucket/prefix or file:///dir.
    #[arg(long, env = "FRESCO_STORAGE")]
    storage: String,
    /// The worker token (`fresco-coordinator keys create --kind worker`)
    /// sent with every call; none for a coordinator served without keys.
    #[arg(long, env = "FRESCO_WORKER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A name for logs and listings (default: host name and process id).
    #[arg(long, env = "FRESCO_NAME")]
    name: Option<String>,
    /// Models to serve, comma-separated (default: the built-in ones and every
    /// model folder in --models-dir).
    #[arg(long, env = "FRESCO_MODELS", value_delimiter = ',')]
    models: Vec<String>,
    /// A directory of model folders, served under the folder's name: fresco
    /// DiT folders (config.json and model.safetensors) and diffusers-layout
    /// Stable Diffusion 1.x/2.x and SDXL folders (unet/, vae/, text_encoder/, ...).
    #[arg(long, env = "FRESCO_MODELS_DIR")]
    models_dir: Option<PathBuf>,
    /// A Hugging Face hub cache (the folder of `models--org--name` folders,
    /// e.g. ~/.cache/huggingface/hub), served offline under hub ids such as
    /// `stabilityai/sdxl-turbo`.
    #[arg(long, env = "FRESCO_HF_CACHE")]
    hf_cache: Option<PathBuf>,
    /// Device to sample on: cpu, cuda or cuda:N (cuda needs a build with
    /// `--features cuda`).
    #[arg(long, env = "FRESCO_DEVICE", default_value = "cpu")]
    device: String,
    /// Float type of Stable Diffusion weights: f32 (the CPU's), f16 or bf16
    /// (GPU only).
    #[arg(long, env = "FRESCO_DTYPE", default_value = "f32")]
    dtype: String,
    /// MiB of model weights kept loaded between tasks (default: half the
    /// device's memory).
    #[arg(long, env = "FRESCO_CACHE_BUDGET_MB")]
    cache_budget_mb: Option<u64>,
    /// Seconds a shutdown waits for the running task before giving it back.
    #[arg(long, env = "FRESCO_SHUTDOWN_GRACE_SECONDS", default_value_t = Settings::DEFAULT_SHUTDOWN_GRACE.as_secs())]
    shutdown_grace_seconds: u64,
    /// Seconds a finished result is held while reporting it keeps failing.
    #[arg(long, env = "FRESCO_REPORT_PATIENCE_SECONDS", default_value_t = Settings::DEFAULT_REPORT_PATIENCE.as_secs())]
    report_patience_seconds: u64,
    /// Serve Prometheus metrics over plain HTTP on this address (e.g.
    /// 0.0.0.0:9091; any path answers). Unset: no metrics endpoint.
    #[arg(long, env = "FRESCO_WORKER_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    #[arg(long, env = "FRESCO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Export traces over OTLP/gRPC to this collector (e.g.
    /// http://collector:4317); unset: no export.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// PEM CA certificate(s) to trust for an https:// coordinator, instead
    /// of the system's roots.
    #[arg(long, env = "FRESCO_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// PEM client certificate to present to an https:// coordinator (one
    /// its --tls-client-ca signed, when it verifies workers); needs
    /// --tls-key.
    #[arg(long, env = "FRESCO_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "FRESCO_TLS_KEY")]
    tls_key: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut traces = fresco_telemetry::init_tracing_exported(
        args.log_format,
        "info",
        fresco_telemetry::traces::endpoint(args.otlp_endpoint.as_deref()).as_deref(),
        "fresco-worker",
    )?;
    let device = parse_device(&args.device)?;
    let dtype = parse_dtype(&args.dtype, &device)?;
    let registry = model_registry(args.models_dir, args.hf_cache, dtype)?;
    let models = served_models(&registry, &args.models)?;
    let cache_budget_bytes = args
        .cache_budget_mb
        .map_or_else(|| default_cache_budget(&device), |mb| mb << 20);
    let dispatch = DispatchSource::Redis {
        url: args.redis_url,
    };
    let mut settings = Settings::new(
        args.coordinator,
        dispatch,
        args.storage,
        registry,
        models,
        device,
    );
    if let Some(name) = args.name {
        settings.name = name;
    }
    settings.token = args.token;
    settings.cache_budget_bytes = cache_budget_bytes;
    settings.shutdown_grace = Duration::from_secs(args.shutdown_grace_seconds);
    settings.report_patience = Duration::from_secs(args.report_patience_seconds);
    settings.tls = fresco_tls::ClientFiles {
        ca: args.tls_ca,
        cert: args.tls_cert,
        key: args.tls_key,
    };
    if let Some(listen) = args.metrics_listen {
        fresco_telemetry::metrics::serve_metrics(listen)
            .with_context(|| format!("serving metrics on {listen}"))?;
        fresco_worker::metrics::describe();
    }
    let shutdown = fresco_telemetry::shutdown_on_signals();
    let ran = fresco_worker::daemon::run(settings, shutdown).await;
    traces.shutdown();
    ran
}
