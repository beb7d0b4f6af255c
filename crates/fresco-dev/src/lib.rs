//! The whole farm in one process, for a machine with no services: the real
//! coordinator on an embedded SQLite store and in-process dispatch queues,
//! writing images under a data directory, with the real worker code
//! talking to it over the same gRPC API as in production.
//!
//! - [`DevOptions`]: where the data lives, where to listen, how many
//!   workers, whether keys are asked.
//! - [`check_listen`]: a farm without keys listens on loopback only.
//! - [`keys`]: `fresco dev keys create | list | revoke`, against the data
//!   directory's database.
//! - [`DevFarm`]: a started farm; [`DevFarm::stop`] shuts it down in order
//!   (workers first, so they finish or give back their tasks, then the
//!   coordinator).
//!
//! Everything lasting lives in the data directory: `fresco.db` (jobs, tasks,
//! outputs) and `outputs/` (the PNGs). A restart picks up where the last run
//! stopped: queued tasks stay queued, tasks that were running are queued
//! again without counting a failure, and the reconciler refills the
//! in-process queues from the store.
//!
//! Keys: by default a dev farm serves without them (every caller is an
//! admin of the default tenant), so it listens on loopback only. With
//! `auth` it asks for keys like a production coordinator, checked against
//! the keys stored in `fresco.db` (`fresco dev keys create`); its own
//! workers get a worker token made at start and revoked at stop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fresco_coordinator::authentication::Access;
use fresco_coordinator::{Coordinator, Settings as CoordinatorSettings, server};
use fresco_dispatch::{Dispatch, MemoryDispatch};
use fresco_storage::Storage;
use fresco_store::{JobStore, KeyScope, SqliteStore};
use fresco_worker::models::{model_registry, served_models};
use fresco_worker::{DispatchSource, Settings as WorkerSettings};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use fresco_coordinator::keys::KeysCommand;
pub use fresco_coordinator::tenants::TenantsCommand;

/// How a dev farm is set up.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// Holds `fresco.db` and `outputs/`; created if missing.
    pub data_dir: PathBuf,
    /// Address of the gRPC API (port 0 picks a free one).
    pub listen: String,
    /// Workers sampling in this process.
    pub workers: usize,
    /// Model folders served besides the built-in models.
    pub models_dir: Option<PathBuf>,
    /// Bytes of model weights each worker keeps loaded.
    pub cache_budget_bytes: u64,
    /// How long a claim or heartbeat keeps a task leased.
    pub lease: Duration,
    /// The deadline of a job that sets none (none: no deadline).
    pub queue_timeout: Option<Duration>,
    /// How often stray output files are swept (zero: never).
    pub sweep_interval: Duration,
    /// How long a quarantined worker waits before it goes on probation.
    pub quarantine_cooldown: Duration,
    /// Ask callers for keys (those in the data directory's database);
    /// without, the farm serves on loopback only.
    pub auth: bool,
    /// Serve the coordinator's and the workers' Prometheus metrics on this
    /// address (none: no endpoint). Once per process.
    pub metrics_listen: Option<SocketAddr>,
    /// Serve the web dashboard on this address (none: no dashboard). When
    /// it is [`DEFAULT_HTTP_LISTEN`] and that port is taken, a free port is
    /// used instead.
    pub http_listen: Option<String>,
}

/// The dashboard's address unless one is given.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";

impl DevOptions {
    /// The defaults for a data directory: `127.0.0.1:50051`, one worker.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen: "127.0.0.1:50051".into(),
            workers: 1,
            models_dir: None,
            cache_budget_bytes: WorkerSettings::DEFAULT_CACHE_BUDGET_BYTES,
            lease: Duration::from_secs(30),
            queue_timeout: None,
            sweep_interval: CoordinatorSettings::default().sweep_interval,
            quarantine_cooldown: CoordinatorSettings::default().quarantine_cooldown,
            auth: false,
            metrics_listen: None,
            http_listen: None,
        }
    }
}

/// A running dev farm.
pub struct DevFarm {
    addr: SocketAddr,
    store: Arc<dyn JobStore>,
    /// The id of the worker token its workers call with (with `auth`).
    worker_token: Option<String>,
    outputs: PathBuf,
    workers_stop: CancellationToken,
    server_stop: CancellationToken,
    workers: Vec<JoinHandle<anyhow::Result<()>>>,
    server: JoinHandle<anyhow::Result<()>>,
    /// The dashboard's address and task, when it is served.
    dashboard: Option<(SocketAddr, JoinHandle<anyhow::Result<()>>)>,
}

/// `Err` naming the flag unless `listen` is a loopback address (an IP, or a
/// host name whose every address is loopback): a farm without keys must
/// not be reachable from other machines.
pub async fn check_listen(listen: &str) -> Result<(), String> {
    check_loopback("--listen", listen).await
}

/// As [`check_listen`], for the address of flag `flag`.
pub async fn check_loopback(flag: &str, listen: &str) -> Result<(), String> {
    let refused = || {
        format!(
            "{flag} {listen}: fresco dev serves without keys, so it listens on a loopback address only (127.0.0.1, [::1] or localhost); to serve other machines, turn keys on with --auth and make them with `fresco dev keys create`"
        )
    };
    let addrs: Vec<SocketAddr> = match listen.parse::<SocketAddr>() {
        Ok(addr) => vec![addr],
        Err(_) => tokio::net::lookup_host(listen)
            .await
            .map_err(|e| format!("{flag} {listen}: {e}"))?
            .collect(),
    };
    if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
        return Err(refused());
    }
    Ok(())
}

/// Binds the dashboard's address; the default one, when taken, gives way
/// to a free port.
async fn bind_dashboard(listen: &str) -> anyhow::Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => Ok(listener),
        Err(err)
            if listen == DEFAULT_HTTP_LISTEN && err.kind() == std::io::ErrorKind::AddrInUse =>
        {
            warn!(
                listen,
                "the dashboard's default address is taken; serving it on a free port"
            );
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .context("binding the dashboard to a free port")
        }
        Err(err) => Err(err).with_context(|| format!("binding the dashboard's address {listen}")),
    }
}

/// `file://` URL of a directory, made absolute.
fn file_url(dir: &Path) -> anyhow::Result<String> {
    let absolute =
        std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let url = url::Url::from_directory_path(&absolute)
        .map_err(|()| anyhow::anyhow!("{} cannot be a file:// URL", absolute.display()))?;
    Ok(url.to_string())
}

impl DevFarm {
    /// Opens the data directory, starts the coordinator and the workers, and
    /// returns once the API accepts connections.
    pub async fn start(options: &DevOptions) -> anyhow::Result<Self> {
        anyhow::ensure!(options.workers >= 1, "a dev farm needs at least one worker");
        if !options.auth {
            check_listen(&options.listen)
                .await
                .map_err(|why| anyhow::anyhow!(why))?;
            if let Some(http) = &options.http_listen {
                check_loopback("--http-listen", http)
                    .await
                    .map_err(|why| anyhow::anyhow!(why))?;
            }
        }
        std::fs::create_dir_all(&options.data_dir)
            .with_context(|| format!("creating {}", options.data_dir.display()))?;
        let database = options.data_dir.join("fresco.db");
        let store = SqliteStore::open(&database)
            .await
            .with_context(|| format!("opening {}", database.display()))?;
        let released = store
            .release_running()
            .await
            .context("queueing again the tasks that were running")?;
        if !released.is_empty() {
            info!(
                tasks = released.len(),
                "tasks that were running when the farm last stopped are queued again"
            );
        }
        let outputs = options.data_dir.join("outputs");
        let storage_url = file_url(&outputs)?;
        let storage = Storage::from_url(&storage_url).context("opening output storage")?;
        let dispatch: Arc<dyn Dispatch> = Arc::new(MemoryDispatch::new());

        let registry = model_registry(options.models_dir.clone(), None, candle_core::DType::F32)?;
        let models = served_models(&registry, &[])?;
        let settings = CoordinatorSettings {
            lease: options.lease,
            heartbeat: (options.lease / 6).max(Duration::from_secs(1)),
            extra_models: models.clone(),
            queue_timeout: options.queue_timeout,
            sweep_interval: options.sweep_interval,
            quarantine_cooldown: options.quarantine_cooldown,
            metrics_interval: options.metrics_listen.map(|_| Duration::from_secs(5)),
            ..CoordinatorSettings::default()
        };
        settings.validate()?;
        if let Some(listen) = options.metrics_listen {
            fresco_telemetry::metrics::serve_metrics(listen)
                .with_context(|| format!("serving metrics on {listen}"))?;
            fresco_coordinator::metrics::describe();
            fresco_worker::metrics::describe();
        }
        let store: Arc<dyn JobStore> = Arc::new(store);
        let token = match options.auth {
            true => Some(
                fresco_coordinator::keys::create(
                    store.as_ref(),
                    KeyScope::Worker,
                    "fresco dev workers",
                )
                .await
                .context("making the dev workers' token")?
                .1,
            ),
            false => None,
        };
        let settings = CoordinatorSettings {
            access: if options.auth {
                Access::Keys
            } else {
                Access::Open
            },
            ..settings
        };
        let app = Coordinator {
            store: store.clone(),
            dispatch: dispatch.clone(),
            storage,
            settings: Arc::new(settings),
            watches: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind(&options.listen)
            .await
            .with_context(|| format!("binding {}", options.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let server_stop = CancellationToken::new();
        let dashboard = match &options.http_listen {
            Some(http) => {
                let listener = bind_dashboard(http).await?;
                let at = listener
                    .local_addr()
                    .context("reading the dashboard's address")?;
                let task =
                    fresco_coordinator::dashboard::spawn(&app, listener, server_stop.clone());
                Some((at, task))
            }
            None => None,
        };
        let server = tokio::spawn(server::serve(app, listener, server_stop.clone()));

        let workers_stop = CancellationToken::new();
        let workers = (1..=options.workers)
            .map(|n| {
                let settings = WorkerSettings {
                    name: format!("dev-worker-{n}"),
                    token: token.as_ref().map(|t| t.key.clone()),
                    cache_budget_bytes: options.cache_budget_bytes,
                    ..WorkerSettings::new(
                        format!("http://{addr}"),
                        DispatchSource::InProcess(dispatch.clone()),
                        storage_url.clone(),
                        registry.clone(),
                        models.clone(),
                        candle_core::Device::Cpu,
                    )
                };
                tokio::spawn(fresco_worker::daemon::run(settings, workers_stop.clone()))
            })
            .collect();
        info!(%addr, data_dir = %options.data_dir.display(), workers = options.workers, models = ?models, "dev farm started");
        Ok(Self {
            addr,
            store,
            worker_token: token.map(|t| t.id),
            outputs,
            workers_stop,
            server_stop,
            workers,
            server,
            dashboard,
        })
    }

    /// Where the gRPC API listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint clients connect to, e.g. `http://127.0.0.1:50051`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The dashboard's address, e.g. `http://127.0.0.1:8080/`, when it is
    /// served.
    pub fn dashboard_url(&self) -> Option<String> {
        self.dashboard
            .as_ref()
            .map(|(at, _)| format!("http://{at}/"))
    }

    /// The directory the images are written under.
    pub fn outputs_dir(&self) -> &Path {
        &self.outputs
    }

    /// Stops the workers (each finishes or gives back its task), then the
    /// coordinator.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.workers_stop.cancel();
        for (n, worker) in self.workers.into_iter().enumerate() {
            match worker.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    warn!(worker = n + 1, error = %format!("{err:#}"), "worker stopped with an error")
                }
                Err(err) => warn!(worker = n + 1, error = %err, "worker task failed"),
            }
        }
        self.server_stop.cancel();
        self.server.await.context("joining the coordinator")??;
        if let Some((_, dashboard)) = self.dashboard {
            dashboard.await.context("joining the dashboard")??;
        }
        if let Some(id) = &self.worker_token {
            // The next start makes a new one; this one opens nothing more.
            fresco_coordinator::keys::revoke(self.store.as_ref(), id)
                .await
                .context("revoking the dev workers' token")?;
        }
        info!("dev farm stopped");
        Ok(())
    }
}

/// `fresco dev keys ...`: runs a keys command against the database of the
/// data directory `data_dir` (created if missing), as a running dev farm
/// with `auth` reads it.
pub async fn keys(data_dir: &Path, command: KeysCommand) -> anyhow::Result<()> {
    let store = open_data_dir(data_dir).await?;
    fresco_coordinator::keys::run(&store, command).await
}

/// `fresco dev tenants ...`: sets or lists tenants' weights and limits in
/// the database of the data directory `data_dir` (created if missing).
pub async fn tenants(data_dir: &Path, command: TenantsCommand) -> anyhow::Result<()> {
    let store = open_data_dir(data_dir).await?;
    fresco_coordinator::tenants::run(&store, command).await
}

/// The store of the data directory `data_dir`.
async fn open_data_dir(data_dir: &Path) -> anyhow::Result<SqliteStore> {
    let database = data_dir.join("fresco.db");
    SqliteStore::open(&database)
        .await
        .with_context(|| format!("opening {}", database.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_farm_without_keys_listens_on_loopback_only() {
        for local in ["127.0.0.1:50051", "[::1]:0", "localhost:50051"] {
            assert_eq!(check_listen(local).await, Ok(()), "{local}");
        }
        for open in ["0.0.0.0:50051", "[::]:50051", "192.0.2.7:50051"] {
            let refused = check_listen(open).await.expect_err(open);
            assert!(
                refused.starts_with(&format!("--listen {open}: fresco dev serves without keys")),
                "{refused}"
            );
        }
    }
}
