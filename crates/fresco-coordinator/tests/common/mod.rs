//! A coordinator for tests, with no binaries and no services: the real
//! `JobService` and `WorkerService` over an embedded SQLite store in a
//! temporary directory, the in-process dispatch queues and `file://` output
//! storage beside the store. Tests call the service methods directly and read
//! the state back through the API and the store.

#![allow(dead_code)] // each test binary uses its own part of the harness

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fresco_coordinator::jobs::JobApi;
use fresco_coordinator::workers::WorkerApi;
use fresco_coordinator::{Coordinator, Settings};
use fresco_core::{JobId, TaskId};
use fresco_dispatch::{Dispatch, MemoryDispatch};
use fresco_proto::v1 as pb;
use fresco_proto::v1::job_service_server::JobService;
use fresco_proto::v1::worker_service_server::WorkerService;
use fresco_storage::Storage;
use fresco_store::{SqliteStore, TaskQuery};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Status};

/// How long a test waits for something the coordinator does on its own (a
/// requeued task pushed after its backoff) before it fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A coordinator on SQLite and in-process queues, in a temporary directory.
pub struct TestCoordinator {
    pub app: Coordinator,
    pub jobs: JobApi,
    pub workers: WorkerApi,
    /// The dispatch queues (in process unless a test gave others), for
    /// tests that lose or read their ids.
    pub dispatch: Arc<dyn Dispatch>,
    _dir: TempDir,
}

impl TestCoordinator {
    /// Opens a fresh store; `settings` starts from the defaults.
    pub async fn start(settings: Settings) -> Self {
        Self::start_with(settings, Arc::new(MemoryDispatch::new()), None).await
    }

    /// [`TestCoordinator::start`] over the dispatch queues given.
    pub async fn start_with_dispatch(settings: Settings, dispatch: Arc<dyn Dispatch>) -> Self {
        Self::start_with(settings, dispatch, None).await
    }

    /// As [`TestCoordinator::start`], with outputs in the storage
    /// `storage_url` names instead of `file://` beside the store.
    pub async fn start_with_storage(settings: Settings, storage_url: Option<&str>) -> Self {
        Self::start_with(settings, Arc::new(MemoryDispatch::new()), storage_url).await
    }

    async fn start_with(
        settings: Settings,
        dispatch: Arc<dyn Dispatch>,
        storage_url: Option<&str>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqliteStore::open(&dir.path().join("fresco.db"))
            .await
            .expect("opening the SQLite store");
        let outputs = dir.path().join("outputs");
        std::fs::create_dir_all(&outputs).expect("creating the outputs directory");
        let storage_url = match storage_url {
            Some(url) => url.to_owned(),
            None => format!("file://{}", outputs.display()),
        };
        let storage = Storage::from_url(&storage_url).expect("opening the output storage");
        let app = Coordinator {
            store: Arc::new(store),
            dispatch: dispatch.clone(),
            storage,
            settings: Arc::new(settings),
            watches: Default::default(),
        };
        Self {
            jobs: JobApi {
                app: app.clone(),
                shutdown: CancellationToken::new(),
            },
            workers: WorkerApi { app: app.clone() },
            app,
            dispatch,
            _dir: dir,
        }
    }

    /// The SQLite file the store keeps.
    pub fn database_path(&self) -> std::path::PathBuf {
        self._dir.path().join("fresco.db")
    }

    /// The directory the `file://` output storage writes under.
    pub fn outputs_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("outputs")
    }

    /// Submits a job of the default model, as `fresco submit` would.
    pub async fn submit(&self, request: pb::SubmitJobRequest) -> Result<pb::Job, Status> {
        let response = self.jobs.submit_job(Request::new(request)).await?;
        Ok(response
            .into_inner()
            .job
            .expect("a submission answers with its job"))
    }

    pub async fn get_job(&self, job_id: &str) -> pb::Job {
        self.jobs
            .get_job(Request::new(pb::GetJobRequest {
                job_id: job_id.to_owned(),
            }))
            .await
            .expect("GetJob")
            .into_inner()
    }

    pub async fn get_task(&self, task_id: &str) -> pb::Task {
        self.jobs
            .get_task(Request::new(pb::GetTaskRequest {
                task_id: task_id.to_owned(),
            }))
            .await
            .expect("GetTask")
            .into_inner()
    }

    /// The job's tasks in index order, through `ListTasks`.
    pub async fn tasks(&self, job_id: &str) -> Vec<pb::Task> {
        self.jobs
            .list_tasks(Request::new(pb::ListTasksRequest {
                job_id: job_id.to_owned(),
                ..Default::default()
            }))
            .await
            .expect("ListTasks")
            .into_inner()
            .tasks
    }

    /// The job's tasks as the store holds them.
    pub async fn stored_tasks(&self, job_id: &str) -> Vec<fresco_store::TaskRecord> {
        let job: JobId = job_id.parse().expect("a job id");
        self.app
            .store
            .list_tasks(&TaskQuery {
                job: Some(job),
                state: None,
                from_index: 0,
                limit: 1000,
            })
            .await
            .expect("listing the stored tasks")
    }

    pub async fn stored_task(&self, task_id: &str) -> fresco_store::TaskRecord {
        let id: TaskId = task_id.parse().expect("a task id");
        self.app.store.get_task(id).await.expect("the stored task")
    }

    /// Registers a worker serving `model`; returns its id.
    pub async fn register(&self, name: &str, model: &str) -> String {
        self.workers
            .register_worker(Request::new(pb::RegisterWorkerRequest {
                name: name.to_owned(),
                device: "cpu".into(),
                models: vec![model.to_owned()],
                ..Default::default()
            }))
            .await
            .expect("RegisterWorker")
            .into_inner()
            .worker_id
    }

    /// How many ids wait in `model`'s dispatch queue.
    pub async fn queued_ids(&self, model: &str) -> u64 {
        self.dispatch.len(model).await.expect("queue length")
    }

    /// Pops the next id of `model`'s queue, waiting up to [`PATIENCE`] for
    /// one, as a worker does before it claims.
    pub async fn pop(&self, model: &str) -> String {
        self.dispatch
            .pop(&[model.to_owned()], PATIENCE)
            .await
            .expect("popping the dispatch queue")
            .expect("a task id arrives in the queue")
            .task
            .to_string()
    }

    /// Empties `model`'s queue, as a flushed Redis would; returns the ids.
    pub async fn drain(&self, model: &str) -> Vec<String> {
        let mut ids = Vec::new();
        while let Some(popped) = self
            .dispatch
            .pop(&[model.to_owned()], Duration::ZERO)
            .await
            .expect("popping the dispatch queue")
        {
            ids.push(popped.task.to_string());
        }
        ids
    }

    pub async fn claim(
        &self,
        worker_id: &str,
        task_id: &str,
    ) -> Result<pb::ClaimTaskResponse, Status> {
        self.workers
            .claim_task(Request::new(pb::ClaimTaskRequest {
                worker_id: worker_id.to_owned(),
                task_id: task_id.to_owned(),
                ..Default::default()
            }))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Pops the next task of `model` and claims it for `worker_id`.
    pub async fn take(&self, worker_id: &str, model: &str) -> pb::ClaimTaskResponse {
        let task_id = self.pop(model).await;
        self.claim(worker_id, &task_id).await.expect("ClaimTask")
    }

    pub async fn heartbeat(
        &self,
        worker_id: &str,
        task_id: &str,
        attempt: u32,
        step: u32,
    ) -> pb::HeartbeatResponse {
        self.workers
            .heartbeat(Request::new(pb::HeartbeatRequest {
                worker_id: worker_id.to_owned(),
                task_id: task_id.to_owned(),
                attempt,
                step,
                ..Default::default()
            }))
            .await
            .expect("Heartbeat")
            .into_inner()
    }

    pub async fn fail(
        &self,
        worker_id: &str,
        task_id: &str,
        attempt: u32,
        message: &str,
        give_back: bool,
    ) -> Result<pb::FailTaskResponse, Status> {
        self.workers
            .fail_task(Request::new(pb::FailTaskRequest {
                device_ms: 0,
                worker_id: worker_id.to_owned(),
                task_id: task_id.to_owned(),
                attempt,
                message: message.to_owned(),
                give_back,
                ..Default::default()
            }))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Reports a failed attempt of `kind`, as a worker does.
    pub async fn fail_as(
        &self,
        worker_id: &str,
        task_id: &str,
        attempt: u32,
        message: &str,
        kind: pb::FailureKind,
    ) -> Result<pb::FailTaskResponse, Status> {
        self.workers
            .fail_task(Request::new(pb::FailTaskRequest {
                device_ms: 0,
                worker_id: worker_id.to_owned(),
                task_id: task_id.to_owned(),
                attempt,
                message: message.to_owned(),
                give_back: false,
                kind: kind as i32,
            }))
            .await
            .map(tonic::Response::into_inner)
    }

    /// One worker as `ListWorkers` shows it.
    pub async fn worker(&self, worker_id: &str) -> pb::Worker {
        self.jobs
            .list_workers(Request::new(pb::ListWorkersRequest::default()))
            .await
            .expect("ListWorkers")
            .into_inner()
            .workers
            .into_iter()
            .find(|w| w.id == worker_id)
            .expect("the worker is listed")
    }

    pub async fn release_worker(&self, worker_id: &str) -> Result<pb::Worker, Status> {
        self.jobs
            .release_worker(Request::new(pb::ReleaseWorkerRequest {
                worker_id: worker_id.to_owned(),
            }))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Reports `task` done by `attempt` with one output per image, keyed as a
    /// worker keys them.
    pub async fn complete(
        &self,
        worker_id: &str,
        task: &pb::Task,
        attempt: u32,
    ) -> Result<(), Status> {
        let job: JobId = task.job_id.parse().expect("a job id");
        let id: TaskId = task.id.parse().expect("a task id");
        let outputs = (0..task.n)
            .map(|index| pb::Output {
                index,
                key: output_key(job, id, attempt, index),
                width: task.width,
                height: task.height,
                seed: task.seed + u64::from(index),
                bytes: 100 + u64::from(index),
                sha256: String::new(),
            })
            .collect();
        self.workers
            .complete_task(Request::new(pb::CompleteTaskRequest {
                device_ms: 0,
                weights_sha256: String::new(),
                worker_id: worker_id.to_owned(),
                task_id: task.id.clone(),
                attempt,
                outputs,
            }))
            .await
            .map(|_| ())
    }
}

/// The key a worker writes image `index` of an attempt under.
pub fn output_key(job: JobId, task: TaskId, attempt: u32, index: u32) -> String {
    fresco_core::keys::output_key("", job, task, attempt, index)
}

/// A job of `tasks` prompts of the default model, each of `n` images, with
/// `max_attempts` attempts per task.
pub fn job_request(tasks: usize, n: u32, max_attempts: u32) -> pb::SubmitJobRequest {
    pb::SubmitJobRequest {
        name: "coordinator test".into(),
        owner: "tests".into(),
        max_attempts,
        defaults: Some(pb::TaskParams {
            steps: Some(4),
            n: Some(n),
            ..Default::default()
        }),
        tasks: (0..tasks)
            .map(|i| pb::TaskParams {
                prompt: Some(format!("prompt {i}")),
                seed: Some(1000 + i as u64),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// The counts of a job, as (queued, running, succeeded, failed, cancelled).
pub fn counts(job: &pb::Job) -> (u64, u64, u64, u64, u64) {
    let c = job.counts.expect("a job has counts");
    (c.queued, c.running, c.succeeded, c.failed, c.cancelled)
}

/// Asserts that `result` failed with `code`, and returns its message.
pub fn refused<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> String {
    match result {
        Ok(value) => panic!("expected {code:?}, got {value:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            status.message().to_owned()
        }
    }
}

/// The time a store timestamp stands for.
pub fn time(at: Option<prost_types::Timestamp>) -> DateTime<Utc> {
    let at = at.expect("a timestamp");
    DateTime::from_timestamp(at.seconds, at.nanos as u32).expect("a valid timestamp")
}

/// Waits until the wall clock, which the store's leases and backoffs read,
/// has passed `at` by at least a millisecond (the store's resolution).
pub async fn wait_past(at: DateTime<Utc>) {
    let target = at + chrono::Duration::milliseconds(1);
    loop {
        let left = target - Utc::now();
        let Ok(left) = left.to_std() else { return };
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left).await;
    }
}
