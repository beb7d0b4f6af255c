//! Harness for fresco's end-to-end tests: the real binaries against real
//! Postgres, Redis and S3.
//!
//! `scripts/test.sh` starts the services and exports where they are
//! (`FRESCO_TEST_*`, `AWS_*`); each test then gets a database of its own,
//! a Redis server of its own and a key prefix of its own in the bucket, so
//! tests run in parallel without seeing each other.
//!
//! Every [`Farm`] asks for keys, as a production farm does: at start it
//! makes an admin client key of the default tenant and a worker token with
//! the real `fresco-coordinator keys create`, gives the token to its
//! workers (`--token`) and the admin key to [`Farm::cli`] (`--api-key`) and
//! to [`Farm::job_client`]. [`Farm::client_key`] makes keys of other
//! tenants and roles.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use fresco_core::bearer::Bearer;
use fresco_proto::v1::job_service_client::JobServiceClient;
use fresco_proto::v1::worker_service_client::WorkerServiceClient;
use sqlx::PgPool;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

pub mod browser;
pub mod models;
pub mod otlp;
pub mod pki;
pub mod signing_s3;
pub mod stores;
pub use pki::TestPki;
pub use signing_s3::TestStorage;
pub use stores::{Snapshot, bucket_keys};

/// Where the shared services are, from the environment.
pub struct Services {
    pub database_url: String,
    pub redis_server: String,
    pub bucket: String,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test.sh, which starts Postgres, Redis and S3")
    })
}

impl Services {
    pub fn from_env() -> Self {
        Self {
            database_url: env("FRESCO_TEST_DATABASE_URL"),
            redis_server: env("FRESCO_TEST_REDIS_SERVER"),
            bucket: env("FRESCO_TEST_BUCKET"),
        }
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("local address").port()
}

/// Waits until `ready` holds, or panics after `timeout` naming `what`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !ready().await {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A database of this test's own, created on the shared Postgres server.
pub struct TestDatabase {
    pub url: String,
}

impl TestDatabase {
    pub async fn create(services: &Services) -> Self {
        let name = format!("fresco_test_{}", Uuid::new_v4().simple());
        let admin = PgPool::connect(&services.database_url)
            .await
            .expect("connecting to the test Postgres server");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("creating a test database");
        admin.close().await;
        let base = services
            .database_url
            .rsplit_once('/')
            .map(|(base, _)| base)
            .expect("database URL has a path");
        Self {
            url: format!("{base}/{name}"),
        }
    }

    pub async fn pool(&self) -> PgPool {
        PgPool::connect(&self.url)
            .await
            .expect("connecting to the test database")
    }
}

/// A child process killed when dropped.
pub struct Proc {
    pub name: String,
    pub child: Child,
}

impl Proc {
    pub fn spawn(name: &str, command: &mut Command) -> Self {
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Self {
            name: name.to_owned(),
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (e.g. "TERM", "KILL").
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} {} failed", self.name);
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for a child") {
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "{} did not exit within {timeout:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis server of this test's own, which a test can stop and start
/// again on the same port ([`RedisServer::stop`], [`RedisServer::restart`]).
pub struct RedisServer {
    pub url: String,
    pub port: u16,
    redis_server: PathBuf,
    proc: Option<Proc>,
}

impl RedisServer {
    pub async fn start(services: &Services) -> Self {
        let port = free_port();
        let mut server = Self {
            url: format!("redis://127.0.0.1:{port}"),
            port,
            redis_server: services.redis_server.clone().into(),
            proc: None,
        };
        server.restart().await;
        server
    }

    /// Kills the server (as a crash would) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.signal("KILL");
            proc.wait_exit(Duration::from_secs(10));
        }
    }

    /// Starts the server (again, empty) on its port and waits until it
    /// answers.
    pub async fn restart(&mut self) {
        self.stop();
        let proc = Proc::spawn(
            "redis-server",
            Command::new(&self.redis_server)
                .args([
                    "--port",
                    &self.port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .stdout(Stdio::null()),
        );
        self.proc = Some(proc);
        let client = redis::Client::open(self.url.as_str()).expect("redis url");
        wait_until("redis-server", Duration::from_secs(10), || {
            let client = client.clone();
            async move { client.get_multiplexed_async_connection().await.is_ok() }
        })
        .await;
    }

    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connecting to redis")
    }
}

/// The directory the workspace's binaries are built into (next to the
/// test executable's `deps/`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target directory")
        .to_path_buf()
}

/// A command for one of fresco's binaries.
pub fn binary(name: &str) -> Command {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the binaries first (cargo build --workspace --bins)",
        path.display()
    );
    Command::new(path)
}

/// Where a test's logs go: kept in the temp dir for a failing test to show.
/// A process started again under the same name appends to its log.
pub fn log_file(dir: &std::path::Path, name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
        .expect("opening a log file")
}

/// Timings for a farm under test: short leases so expiry tests are quick.
#[derive(Debug, Clone)]
pub struct FarmOptions {
    pub workers: usize,
    pub lease_seconds: u64,
    pub heartbeat_seconds: u64,
    pub reconcile_ms: u64,
    pub reap_ms: u64,
    /// The coordinator's first backoff after a failure.
    pub retry_backoff_ms: u64,
    /// Seconds between the coordinator's sweeps of stray output objects
    /// (`--sweep-interval-seconds`; 0: none). A sweep deletes the objects of
    /// attempts that ended a lease ago or more without recording them; it
    /// has caught up when [`Farm::unswept_tasks`] is 0.
    pub sweep_interval_seconds: u64,
    /// Extra flags for every worker.
    pub worker_args: Vec<String>,
    /// Extra flags for the coordinator.
    pub coordinator_args: Vec<String>,
    /// Environment variables for the coordinator and every worker (e.g.
    /// `AWS_ENDPOINT_URL` through a [`TcpProxy`]).
    pub env: Vec<(String, String)>,
    /// Whether the coordinator reaches Postgres through a [`TcpProxy`]
    /// (`Farm::db_proxy`) that a test can switch off.
    pub proxy_database: bool,
    /// Serve gRPC over TLS with these certificates: the endpoint is
    /// `https://`, workers and the CLI trust the test CA, and with
    /// `verify_workers` workers present its client certificate.
    pub tls: Option<TestPki>,
    /// Keep the outputs in this S3 server instead of the services' moto
    /// (e.g. [`TestStorage::signing_from_env`], which checks presigned
    /// URLs): the storage URL names its bucket, and the coordinator and
    /// every worker get its `AWS_*` variables (before `env`, which wins).
    /// The test process's own S3 reads ([`Farm::storage`],
    /// [`Farm::bucket_keys`], [`Farm::snapshot`]) still go to moto: read
    /// this one through [`TestStorage::store`].
    pub storage: Option<TestStorage>,
}

impl Default for FarmOptions {
    fn default() -> Self {
        Self {
            workers: 2,
            lease_seconds: 4,
            heartbeat_seconds: 1,
            reconcile_ms: 300,
            reap_ms: 200,
            retry_backoff_ms: 200,
            sweep_interval_seconds: 1,
            worker_args: Vec::new(),
            coordinator_args: Vec::new(),
            env: Vec::new(),
            proxy_database: false,
            tls: None,
            storage: None,
        }
    }
}

/// `fresco submit` flags for fast tasks: fresco-shapes, 2 steps, 16×16.
pub const FAST_SHAPES: [&str; 8] = [
    "--model",
    "fresco-shapes",
    "--steps",
    "2",
    "--width",
    "16",
    "--height",
    "16",
];

/// A client of the client API sending a key with every call.
pub type JobClient = JobServiceClient<InterceptedService<Channel, Bearer>>;
/// A client of the worker API sending a worker token with every call.
pub type WorkerClient = WorkerServiceClient<InterceptedService<Channel, Bearer>>;

/// A key's id: the 12 hex digits after `fresco_k_` or `fresco_w_`.
pub fn key_id(key: &str) -> &str {
    key.get(9..21)
        .unwrap_or_else(|| panic!("{key:?} is not a fresco key"))
}

/// A client of the coordinator at `endpoint` sending `key` (none: no key).
pub async fn job_client_at(endpoint: &str, key: Option<&str>) -> JobClient {
    try_job_client_at(endpoint, key)
        .await
        .expect("connecting to the coordinator")
}

/// [`job_client_at`], `None` while the coordinator cannot be reached.
pub async fn try_job_client_at(endpoint: &str, key: Option<&str>) -> Option<JobClient> {
    let channel = Channel::from_shared(endpoint.to_owned())
        .expect("an endpoint URL")
        .connect()
        .await
        .ok()?;
    Some(job_client_over(channel, key))
}

/// A client of the client API over `channel`, sending `key`.
fn job_client_over(channel: Channel, key: Option<&str>) -> JobClient {
    JobServiceClient::with_interceptor(channel, Bearer::new(key).expect("a sendable key"))
        .max_decoding_message_size(512 << 20)
        .max_encoding_message_size(512 << 20)
}

/// A worker-API client of the coordinator at `endpoint` sending `token`.
pub async fn worker_client_at(endpoint: &str, token: Option<&str>) -> WorkerClient {
    let channel = Channel::from_shared(endpoint.to_owned())
        .expect("an endpoint URL")
        .connect()
        .await
        .expect("connecting to the coordinator");
    worker_client_over(channel, token)
}

/// A client of the worker API over `channel`, sending `token`.
fn worker_client_over(channel: Channel, token: Option<&str>) -> WorkerClient {
    WorkerServiceClient::with_interceptor(channel, Bearer::new(token).expect("a sendable token"))
}

/// A coordinator and workers over this test's own database, Redis and
/// bucket prefix.
pub struct Farm {
    pub services: Services,
    pub db: TestDatabase,
    pub redis: RedisServer,
    pub storage_url: String,
    pub endpoint: String,
    pub listen: String,
    pub dir: tempfile::TempDir,
    pub coordinator: Option<Proc>,
    pub workers: Vec<Proc>,
    pub options: FarmOptions,
    /// Between the coordinator and Postgres, with `proxy_database`.
    pub db_proxy: Option<TcpProxy>,
    /// An admin client key of the default tenant: what [`Farm::cli`] and
    /// [`Farm::job_client`] call with.
    pub admin_key: String,
    /// The worker token every worker of the farm registers with.
    pub worker_token: String,
    /// The database URL the coordinator is given.
    coordinator_db_url: String,
}

impl Farm {
    pub async fn start(mut options: FarmOptions) -> Self {
        let services = Services::from_env();
        let db = TestDatabase::create(&services).await;
        let redis = RedisServer::start(&services).await;
        let bucket = options
            .storage
            .as_ref()
            .map_or(services.bucket.as_str(), |storage| storage.bucket.as_str());
        let storage_url = format!("s3://{bucket}/t-{}", Uuid::new_v4().simple());
        if let Some(storage) = &options.storage {
            let mut env = storage.env();
            env.append(&mut options.env);
            options.env = env;
        }
        let port = free_port();
        let (db_proxy, coordinator_db_url) = if options.proxy_database {
            let (head, rest) = db.url.split_once('@').expect("a URL with a user");
            let (host, path) = rest.split_once('/').expect("a URL with a database");
            let proxy = TcpProxy::start(host).await;
            let url = format!("{head}@127.0.0.1:{}/{path}", proxy.port);
            (Some(proxy), url)
        } else {
            (None, db.url.clone())
        };
        let admin_key = create_key(
            &db.url,
            &["--kind", "client", "--tenant", "default", "--role", "admin"],
        );
        let worker_token = create_key(&db.url, &["--kind", "worker", "--name", "farm workers"]);
        let mut farm = Self {
            services,
            db,
            redis,
            storage_url,
            endpoint: format!(
                "{}://127.0.0.1:{port}",
                if options.tls.is_some() {
                    "https"
                } else {
                    "http"
                }
            ),
            listen: format!("127.0.0.1:{port}"),
            dir: tempfile::tempdir().expect("temp dir"),
            coordinator: None,
            workers: Vec::new(),
            options,
            db_proxy,
            coordinator_db_url,
            admin_key,
            worker_token,
        };
        farm.start_coordinator().await;
        for _ in 0..farm.options.workers {
            farm.start_worker().await;
        }
        farm
    }

    pub async fn start_coordinator(&mut self) {
        let o = &self.options;
        let log = log_file(self.dir.path(), "coordinator");
        let proc = Proc::spawn(
            "fresco-coordinator",
            binary("fresco-coordinator")
                .args(["--listen", &self.listen])
                .args(["--database-url", &self.coordinator_db_url])
                .args(["--redis-url", &self.redis.url])
                .args(["--storage", &self.storage_url])
                .args(["--lease-seconds", &o.lease_seconds.to_string()])
                .args(["--heartbeat-seconds", &o.heartbeat_seconds.to_string()])
                .args(["--reconcile-ms", &o.reconcile_ms.to_string()])
                .args(["--reap-ms", &o.reap_ms.to_string()])
                .args(["--retry-backoff-ms", &o.retry_backoff_ms.to_string()])
                .args([
                    "--sweep-interval-seconds",
                    &o.sweep_interval_seconds.to_string(),
                ])
                .args(&o.coordinator_args)
                .args(o.tls.iter().flat_map(TestPki::coordinator_args))
                .envs(o.env.iter().map(|(k, v)| (k, v)))
                .stdout(Stdio::null())
                .stderr(log),
        );
        self.coordinator = Some(proc);
        let endpoint = self.client_endpoint();
        wait_until("the coordinator to serve", Duration::from_secs(30), || {
            let endpoint = endpoint.clone();
            async move { endpoint.connect().await.is_ok() }
        })
        .await;
    }

    /// The endpoint a client in the test process connects to the
    /// coordinator with (over TLS trusting the test CA on a TLS farm).
    pub fn client_endpoint(&self) -> tonic::transport::Endpoint {
        let files = self
            .options
            .tls
            .as_ref()
            .map(TestPki::client_files)
            .unwrap_or_default();
        fresco_tls::endpoint(&self.endpoint, &files).expect("the coordinator's endpoint")
    }

    /// SIGKILLs the coordinator and waits until it is gone.
    pub fn kill_coordinator(&mut self) {
        if let Some(coordinator) = self.coordinator.as_mut() {
            coordinator.signal("KILL");
            coordinator.wait_exit(Duration::from_secs(10));
        }
    }

    /// Starts one more worker and waits until it has registered.
    pub async fn start_worker(&mut self) {
        self.start_worker_with(&[]).await;
    }

    /// Starts one more worker with flags of its own (after the farm's).
    pub async fn start_worker_with(&mut self, extra_args: &[String]) {
        let before = self.registered_workers().await;
        let n = self.workers.len();
        let tls_args: Vec<String> = self
            .options
            .tls
            .iter()
            .flat_map(TestPki::worker_args)
            .collect();
        let mut command = self.worker_command(&format!("worker-{n}"), &tls_args);
        let proc = Proc::spawn("fresco-worker", command.args(extra_args));
        self.workers.push(proc);
        let pool = self.db.pool().await;
        wait_until("the worker to register", Duration::from_secs(30), || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM workers")
                    .fetch_one(&pool)
                    .await
                    .map(|n| n > before)
                    .unwrap_or(false)
            }
        })
        .await;
    }

    /// A worker of this farm named `name`, with `tls_args` as its only TLS
    /// flags and its stderr in the log `name`, not started.
    pub fn worker_command(&self, name: &str, tls_args: &[String]) -> Command {
        let log = log_file(self.dir.path(), name);
        let mut command = binary("fresco-worker");
        command
            .args(["--coordinator", &self.endpoint])
            .args(["--token", &self.worker_token])
            .args(["--redis-url", &self.redis.url])
            .args(["--storage", &self.storage_url])
            .args(["--name", name])
            .args(["--shutdown-grace-seconds", "10"])
            .args(&self.options.worker_args)
            .args(tls_args)
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log);
        command
    }

    /// The text of the log `name` (e.g. "coordinator", "worker-0").
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Waits until some task of the farm is running.
    pub async fn wait_for_running_task(&self) {
        let pool = self.db.pool().await;
        wait_until("a task to start", Duration::from_secs(20), || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM tasks WHERE state = 'running'")
                    .fetch_one(&pool)
                    .await
                    .map(|n| n > 0)
                    .unwrap_or(false)
            }
        })
        .await;
    }

    /// How many workers the farm's Postgres holds.
    pub async fn registered_workers(&self) -> i64 {
        let pool = self.db.pool().await;
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM workers")
            .fetch_one(&pool)
            .await
            .unwrap_or(0)
    }

    /// Tasks with ended attempts whose stray objects the sweeper has not
    /// swept yet (whatever their age), read straight from Postgres: 0 once
    /// sweeping has caught up.
    pub async fn unswept_tasks(&self) -> i64 {
        let pool = self.db.pool().await;
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM tasks WHERE attempt_ended_at IS NOT NULL \
             AND swept_through < CASE WHEN state = 'running' THEN attempt - 1 ELSE attempt END",
        )
        .fetch_one(&pool)
        .await
        .expect("counting unswept tasks")
    }

    /// Runs the real `fresco` CLI against this farm, as its admin.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_as(&self.admin_key, args)
    }

    /// Runs the real `fresco` CLI against this farm with the client key
    /// `key`.
    pub fn cli_as(&self, key: &str, args: &[&str]) -> Output {
        self.cli_command(key)
            .args(args)
            .output()
            .expect("running fresco")
    }

    /// `fresco --coordinator ENDPOINT` calling with `key` (in
    /// `FRESCO_API_KEY`), to add arguments to and spawn.
    pub fn cli_command(&self, key: &str) -> Command {
        let mut command = binary("fresco");
        command
            .args(["--coordinator", &self.endpoint])
            .args(self.options.tls.iter().flat_map(TestPki::cli_args))
            .env("FRESCO_API_KEY", key);
        command
    }

    /// A new client key of `tenant` with `role` (admin, submitter or
    /// viewer), made by the real `fresco-coordinator keys create`.
    pub fn client_key(&self, tenant: &str, role: &str) -> String {
        create_key(
            &self.db.url,
            &["--kind", "client", "--tenant", tenant, "--role", role],
        )
    }

    /// A new worker token, made by the real `fresco-coordinator keys
    /// create`.
    pub fn new_worker_token(&self) -> String {
        create_key(&self.db.url, &["--kind", "worker"])
    }

    /// Revokes `key` with the real `fresco-coordinator keys revoke`.
    pub fn revoke_key(&self, key: &str) {
        let out = binary("fresco-coordinator")
            .args([
                "keys",
                "revoke",
                "--database-url",
                &self.db.url,
                key_id(key),
            ])
            .output()
            .expect("running fresco-coordinator keys revoke");
        assert!(out.status.success(), "{}", describe(&out));
    }

    /// A client of the client API calling as the farm's admin.
    pub async fn job_client(&self) -> JobClient {
        self.job_client_as(&self.admin_key).await
    }

    /// A client of the client API calling with `key` (over TLS on a TLS
    /// farm).
    pub async fn job_client_as(&self, key: &str) -> JobClient {
        job_client_over(self.channel().await, Some(key))
    }

    /// A connection to the coordinator from the test process.
    async fn channel(&self) -> Channel {
        self.client_endpoint()
            .connect()
            .await
            .expect("connecting to the coordinator")
    }

    /// Runs the real `fresco-coordinator tenants ARGS` against this farm's
    /// database; asserts that it succeeded and returns what it printed.
    pub fn tenants(&self, args: &[&str]) -> String {
        let out = binary("fresco-coordinator")
            .arg("tenants")
            .args(args)
            .args(["--database-url", &self.db.url])
            .output()
            .expect("running fresco-coordinator tenants");
        assert!(out.status.success(), "{}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A client of the worker API calling with the farm's worker token.
    pub async fn worker_client(&self) -> WorkerClient {
        self.worker_client_as(&self.worker_token).await
    }

    /// A client of the worker API calling with `token` (over TLS on a TLS
    /// farm).
    pub async fn worker_client_as(&self, token: &str) -> WorkerClient {
        worker_client_over(self.channel().await, Some(token))
    }

    /// Runs `fresco submit` with `args`; returns the job id it printed.
    pub fn submit(&self, args: &[&str]) -> String {
        let mut all = vec!["submit"];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        assert!(out.status.success(), "{}", describe(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `fresco status --json --tasks all JOB`: the job with every task.
    pub fn status(&self, job: &str) -> serde_json::Value {
        stdout_json(&self.cli(&["status", "--json", "--tasks", "all", job]))
    }

    /// Waits until the job has finished, asking again while the
    /// coordinator cannot answer; returns its last status.
    pub async fn wait_finished(&self, job: &str, timeout: Duration) -> serde_json::Value {
        wait_until("the job to finish", timeout, || async {
            let out = self.cli(&["status", "--json", job]);
            out.status.success()
                && serde_json::from_slice::<serde_json::Value>(&out.stdout)
                    .is_ok_and(|status| status["finished"] == true)
        })
        .await;
        self.status(job)
    }

    /// Waits until the coordinator has written the bucket manifest of each
    /// of `jobs` as it stands (the store marks one written once its object
    /// is in the bucket), so nothing changes under a snapshot after.
    pub async fn wait_manifests_written(&self, jobs: &[&str]) {
        let pool = self.db.pool().await;
        let jobs: Vec<String> = jobs.iter().map(|j| (*j).to_owned()).collect();
        wait_until("the jobs' manifests to be written", Duration::from_secs(60), || {
            let (pool, jobs) = (pool.clone(), jobs.clone());
            async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM jobs WHERE id::TEXT = ANY($1) AND manifest_written_for = reopened",
                )
                .bind(&jobs)
                .fetch_one(&pool)
                .await
                .is_ok_and(|n| n == jobs.len() as i64)
            }
        })
        .await;
    }

    /// Opens the farm's output storage with the same code the binaries use.
    pub fn storage(&self) -> fresco_storage::Storage {
        fresco_storage::Storage::from_url(&self.storage_url).expect("opening test storage")
    }

    /// The logs of every process, for a failing assertion's message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for entry in entries.flatten() {
                if entry.path().extension().is_some_and(|e| e == "log") {
                    let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(40).collect();
                    out.push_str(&format!("--- {}\n", entry.path().display()));
                    for line in tail.into_iter().rev() {
                        out.push_str(line);
                        out.push('\n');
                    }
                }
            }
        }
        out
    }
}

/// Makes a key with `fresco-coordinator keys create ARGS` against the
/// database at `database_url`; returns the key it printed.
fn create_key(database_url: &str, args: &[&str]) -> String {
    let out = binary("fresco-coordinator")
        .args(["keys", "create", "--database-url", database_url])
        .args(args)
        .output()
        .expect("running fresco-coordinator keys create");
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The JSON a command printed; panics, showing the output, if it failed.
pub fn stdout_json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", describe(out));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// A models directory holding the DiT folder `name` (the tiny built-in
/// architecture: sides up to 512, multiples of 8). For a task the worker
/// refuses as its own fault: start the coordinator with `--models name`, so
/// it accepts `name` before any worker has reported what it runs, submit,
/// then start a worker with `--models-dir` this directory; a task beyond
/// those limits (e.g. 1024 wide) was admitted and fails on the worker.
pub fn unreported_dit_models(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    models::write_tiny_dit(&dir.path().join(name), name);
    dir
}

/// Text of a command's output, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A TCP proxy to a service that can be switched off: while down it drops
/// every open connection and refuses new ones, as a dead server would.
pub struct TcpProxy {
    pub port: u16,
    down: tokio::sync::watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards to `target` (host:port).
    pub async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let (down, watch) = tokio::sync::watch::channel(false);
        let target = target.to_owned();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if *watch.borrow() {
                    continue; // dropped: the connection is reset
                }
                let target = target.clone();
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watch.wait_for(|down| *down) => {}
                    }
                });
            }
        });
        Self { port, down, accept }
    }

    /// Takes the service away (`true`) or brings it back (`false`).
    pub fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Decodes a PNG into (width, height, its 8-bit pixels as stored).
pub fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("a valid PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("buffer size")];
    let info = reader.next_frame(&mut buf).expect("a valid PNG frame");
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}
