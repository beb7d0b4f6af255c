//! `fresco-coordinator`: the farm's control plane. With no subcommand it
//! serves; `keys` issues, lists and revokes the farm's credentials (see
//! `fresco_coordinator::keys`); `tenants` sets and lists the tenants'
//! weights and limits (see `fresco_coordinator::tenants`); `migrate`
//! applies the database migrations and exits (for deploy pipelines).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use fresco_coordinator::authentication::Access;
use fresco_coordinator::keys::{self, KeysCommand};
use fresco_coordinator::tenants::{self, TenantsCommand};
use fresco_coordinator::{Coordinator, Settings, dashboard, server};
use fresco_dispatch::RedisDispatch;
use fresco_storage::Storage;
use fresco_store::{Backoff, PgStore};
use fresco_telemetry::LogFormat;
use fresco_tls::{ServerFiles, ServerTls};
use tracing::warn;

/// Serves fresco's gRPC API, keeps jobs in Postgres and dispatches tasks
/// through Redis. Every flag also reads `FRESCO_<FLAG>`.
#[derive(Debug, Parser)]
#[command(name = "fresco-coordinator", version, subcommand_negates_reqs = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Client keys and worker tokens: create, list, revoke (against
    /// --database-url, its migrations applied first).
    Keys(KeysArgs),
    /// Tenants' weights and limits: set, list (against --database-url, its
    /// migrations applied first).
    Tenants(TenantsArgs),
    /// Applies the database migrations this build knows to --database-url
    /// and exits: for deploy pipelines that migrate before rolling out
    /// coordinators (serving applies them too).
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
struct MigrateArgs {
    /// Postgres URL (name the user: postgres://user@host/db).
    #[arg(long, env = "FRESCO_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Debug, Args)]
struct TenantsArgs {
    /// Postgres URL (name the user: postgres://user@host/db).
    #[arg(long, env = "FRESCO_DATABASE_URL", global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: TenantsCommand,
}

#[derive(Debug, Args)]
struct KeysArgs {
    /// Postgres URL (name the user: postgres://user@host/db).
    #[arg(long, env = "FRESCO_DATABASE_URL", global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: KeysCommand,
}

/// Serving (no subcommand).
#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to serve the gRPC API on.
    #[arg(long, env = "FRESCO_LISTEN", default_value = "127.0.0.1:50051")]
    listen: String,
    /// Postgres URL (name the user: postgres://user@host/db).
    #[arg(long, env = "FRESCO_DATABASE_URL", required = true)]
    database_url: Option<String>,
    /// Redis URL for the dispatch queues.
    #[arg(
        long,
        env = "FRESCO_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
    /// Output storage: s3://bucket/prefix or file:///dir.
    #[arg(long, env = "FRESCO_STORAGE", required = true)]
    storage: Option<String>,
    /// Key prefix of the Redis queues.
    #[arg(long, env = "FRESCO_QUEUE_PREFIX", default_value = "fresco")]
    queue_prefix: String,
    /// Seconds a claim or heartbeat keeps a task leased.
    #[arg(long, env = "FRESCO_LEASE_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..=3600))]
    lease_seconds: u64,
    /// Seconds between worker heartbeats.
    #[arg(long, env = "FRESCO_HEARTBEAT_SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    heartbeat_seconds: u64,
    /// Milliseconds between reconciler passes over the dispatch queues.
    #[arg(long, env = "FRESCO_RECONCILE_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..))]
    reconcile_ms: u64,
    /// Milliseconds between passes of the lease reaper.
    #[arg(long, env = "FRESCO_REAP_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(100..))]
    reap_ms: u64,
    /// Milliseconds a task waits after its first failure before it runs
    /// again; doubled after each further failure, with random jitter.
    #[arg(long, env = "FRESCO_RETRY_BACKOFF_MS", default_value_t = 2000)]
    retry_backoff_ms: u64,
    /// The longest wait after a failure, in milliseconds.
    #[arg(long, env = "FRESCO_RETRY_BACKOFF_MAX_MS", default_value_t = 60_000)]
    retry_backoff_max_ms: u64,
    /// Failed attempts in a row (of the worker's fault: not a bad request)
    /// after which a worker is quarantined: it claims nothing until its
    /// cool-down ends or `fresco workers release` releases it.
    #[arg(long, env = "FRESCO_QUARANTINE_AFTER", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    quarantine_after: u32,
    /// Seconds a quarantined worker waits before it goes on probation: it
    /// may claim one probe task; success returns it to service, failure
    /// quarantines it again.
    #[arg(
        long,
        env = "FRESCO_QUARANTINE_COOLDOWN_SECONDS",
        default_value_t = 300
    )]
    quarantine_cooldown_seconds: u64,
    /// Most tasks in one job.
    #[arg(long, env = "FRESCO_MAX_TASKS_PER_JOB", default_value_t = 1_000_000)]
    max_tasks_per_job: usize,
    /// Extra model ids to accept (comma-separated), besides the built-in
    /// ones and those registered workers serve.
    #[arg(long, env = "FRESCO_MODELS", value_delimiter = ',')]
    models: Vec<String>,
    /// Seconds a job's tasks may stay queued when the job sets no deadline
    /// of its own; tasks still queued then fail (0: no deadline).
    #[arg(long, env = "FRESCO_QUEUE_TIMEOUT_SECONDS", default_value_t = 0)]
    queue_timeout_seconds: u64,
    /// Seconds between sweeps that delete output objects of attempts that
    /// ended without recording them (0: no sweeping).
    #[arg(long, env = "FRESCO_SWEEP_INTERVAL_SECONDS", default_value_t = 60)]
    sweep_interval_seconds: u64,
    /// Seconds a finished job is kept after its last task ended; older
    /// ones are deleted with their images, each sweep interval (0: kept
    /// for ever).
    #[arg(long, env = "FRESCO_JOB_RETENTION_SECONDS", default_value_t = 0)]
    job_retention_seconds: u64,
    /// Seconds between passes that write `{prefix}/{job}/manifest.jsonl`
    /// beside the images of each job that finished (again) since (0: no
    /// manifests in the bucket; `fresco manifest` still reads them).
    #[arg(long, env = "FRESCO_MANIFEST_INTERVAL_SECONDS", default_value_t = 5)]
    manifest_interval_seconds: u64,
    /// Serve without keys: every caller is an admin of the default tenant,
    /// and anyone who reaches the address can act as a worker. Only for a
    /// network no one else reaches.
    #[arg(long, env = "FRESCO_INSECURE_NO_AUTH")]
    insecure_no_auth: bool,
    #[arg(long, env = "FRESCO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Export traces over OTLP/gRPC to this collector (e.g.
    /// http://collector:4317); unset: no export.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Serve Prometheus metrics over plain HTTP on this address (e.g.
    /// 0.0.0.0:9090; any path answers). Unset: no metrics endpoint.
    #[arg(long, env = "FRESCO_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Serve the web dashboard over plain HTTP on this address (e.g.
    /// 127.0.0.1:8080). Viewers sign in with an API key unless the farm
    /// runs without keys. Unset: no dashboard.
    #[arg(long, env = "FRESCO_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// Milliseconds between refreshes of the task gauges (tasks per model
    /// and state) from Postgres, when metrics are served.
    #[arg(long, env = "FRESCO_METRICS_INTERVAL_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..))]
    metrics_interval_ms: u64,
    /// Serve gRPC over TLS with this PEM certificate (chain); needs
    /// --tls-key. Clients then connect to an https:// URL.
    #[arg(long, env = "FRESCO_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "FRESCO_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Verify client certificates against this PEM CA: worker API calls
    /// need a certificate it signed (workers' --tls-cert, --tls-key);
    /// clients without one still reach the client API.
    #[arg(long, env = "FRESCO_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Keys(args)) => manage_keys(args).await,
        Some(Command::Tenants(args)) => manage_tenants(args).await,
        Some(Command::Migrate(args)) => migrate(args).await,
        None => serve(cli.serve).await,
    }
}

/// `keys ...`: logs only warnings, so stdout holds what the command prints.
async fn manage_keys(args: KeysArgs) -> anyhow::Result<()> {
    fresco_telemetry::init_tracing_with_default(LogFormat::Text, "warn");
    let url = args
        .database_url
        .context("keys needs --database-url (or FRESCO_DATABASE_URL)")?;
    let store = PgStore::connect(&url)
        .await
        .context("connecting to Postgres and applying migrations")?;
    keys::run(&store, args.command).await
}

/// `tenants ...`: logs only warnings, so stdout holds what the command
/// prints.
async fn manage_tenants(args: TenantsArgs) -> anyhow::Result<()> {
    fresco_telemetry::init_tracing_with_default(LogFormat::Text, "warn");
    let url = args
        .database_url
        .context("tenants needs --database-url (or FRESCO_DATABASE_URL)")?;
    let store = PgStore::connect(&url)
        .await
        .context("connecting to Postgres and applying migrations")?;
    tenants::run(&store, args.command).await
}

/// `migrate`: connecting applies every pending migration; says which is
/// the newest on stdout.
async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    fresco_telemetry::init_tracing_with_default(LogFormat::Text, "warn");
    let url = args
        .database_url
        .context("migrate needs --database-url (or FRESCO_DATABASE_URL)")?;
    PgStore::connect(&url)
        .await
        .context("connecting to Postgres and applying migrations")?;
    match PgStore::latest_migration() {
        Some((version, description)) => {
            println!("migrations applied: the database is at {version} ({description})");
        }
        None => println!("no migrations to apply"),
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Refused TLS handshakes (a client certificate no trusted CA signed,
    // plain HTTP on a TLS port) are logged by tonic at debug: keep them.
    let mut traces = fresco_telemetry::init_tracing_exported(
        args.log_format,
        "info,tonic::transport::server::io_stream=debug",
        fresco_telemetry::traces::endpoint(args.otlp_endpoint.as_deref()).as_deref(),
        "fresco-coordinator",
    )?;
    let settings = settings(&args);
    settings.validate()?;
    let tls = server_tls(&args)?;
    if settings.access == Access::Open {
        warn!(
            "serving WITHOUT authentication (--insecure-no-auth): every caller is an admin of the default tenant and anyone who reaches this address can act as a worker"
        );
    }
    let (Some(database_url), Some(storage_url)) = (&args.database_url, &args.storage) else {
        anyhow::bail!("serving needs --database-url and --storage");
    };
    let shutdown = fresco_telemetry::shutdown_on_signals();
    if let Some(listen) = args.metrics_listen {
        fresco_telemetry::metrics::serve_metrics(listen)
            .with_context(|| format!("serving metrics on {listen}"))?;
        fresco_coordinator::metrics::describe();
    }
    let store = PgStore::connect(database_url)
        .await
        .context("connecting to Postgres and applying migrations")?;
    let dispatch = RedisDispatch::connect(&args.redis_url, &args.queue_prefix)
        .await
        .context("connecting to Redis")?;
    let storage = Storage::from_url(storage_url).context("opening output storage")?;
    let app = Coordinator {
        store: Arc::new(store),
        dispatch: Arc::new(dispatch),
        storage,
        settings: Arc::new(settings),
        watches: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let dashboard = match args.http_listen {
        Some(addr) => {
            let http = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the dashboard's address {addr}"))?;
            Some(dashboard::spawn(&app, http, shutdown.clone()))
        }
        None => None,
    };
    let served = server::serve_with_tls(app, listener, tls, shutdown).await;
    if let Some(dashboard) = dashboard {
        dashboard.await.context("joining the dashboard")??;
    }
    traces.shutdown();
    served
}

/// The TLS the flags ask for: none, or their files read and checked.
fn server_tls(args: &ServeArgs) -> anyhow::Result<Option<ServerTls>> {
    let files = ServerFiles::from_flags(
        args.tls_cert.clone(),
        args.tls_key.clone(),
        args.tls_client_ca.clone(),
    )?;
    Ok(files.as_ref().map(ServerTls::load).transpose()?)
}

/// The settings the flags name, the others at their defaults.
fn settings(args: &ServeArgs) -> Settings {
    let mut settings = Settings {
        lease: Duration::from_secs(args.lease_seconds),
        heartbeat: Duration::from_secs(args.heartbeat_seconds),
        reconcile_interval: Duration::from_millis(args.reconcile_ms),
        reap_interval: Duration::from_millis(args.reap_ms),
        queue_prefix: args.queue_prefix.clone(),
        quarantine_after: args.quarantine_after,
        quarantine_cooldown: Duration::from_secs(args.quarantine_cooldown_seconds),
        retry_backoff: Backoff {
            base: Duration::from_millis(args.retry_backoff_ms),
            max: Duration::from_millis(args.retry_backoff_max_ms.max(args.retry_backoff_ms)),
        },
        extra_models: args.models.clone(),
        queue_timeout: (args.queue_timeout_seconds > 0)
            .then(|| Duration::from_secs(args.queue_timeout_seconds)),
        sweep_interval: Duration::from_secs(args.sweep_interval_seconds),
        job_retention: (args.job_retention_seconds > 0)
            .then(|| Duration::from_secs(args.job_retention_seconds)),
        manifest_interval: Duration::from_secs(args.manifest_interval_seconds),
        access: if args.insecure_no_auth {
            Access::Open
        } else {
            Access::Keys
        },
        metrics_interval: args
            .metrics_listen
            .map(|_| Duration::from_millis(args.metrics_interval_ms)),
        ..Settings::default()
    };
    settings.limits.max_tasks = args.max_tasks_per_job;
    settings
}
