//! The client API: submit, inspect, watch and cancel jobs, read outputs.

use std::pin::Pin;

use fresco_core::params::BUILTIN_MODELS;
use fresco_core::{FieldError, JobId, TaskId, TaskState, validate};
use fresco_proto::v1 as pb;
use fresco_proto::v1::job_service_server::JobService;
use fresco_store::TaskQuery;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::{Coordinator, control, convert};

/// Bytes per `ReadOutput` chunk.
const CHUNK: usize = 1 << 20;

pub struct JobApi {
    pub app: Coordinator,
    /// Ends open `WatchJob` streams when the coordinator shuts down, so a
    /// graceful shutdown never waits on a watcher.
    pub shutdown: CancellationToken,
}

impl JobApi {
    async fn known_models(&self) -> Result<Vec<String>, Status> {
        let mut models = self.app.store.served_models().await?;
        models.extend(BUILTIN_MODELS.iter().map(|m| (*m).to_owned()));
        models.extend(self.app.settings.extra_models.iter().cloned());
        Ok(models)
    }
}

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl JobService for JobApi {
    async fn submit_job(
        &self,
        request: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::SubmitJobResponse>, Status> {
        let request = request.into_inner();
        let models = self.known_models().await?;
        let spec = validate::job_spec(
            &request,
            &self.app.settings.limits,
            &|model| models.iter().any(|m| m == model),
            &mut rand::random::<u64>,
        )?;
        let submitted = self.app.store.submit(&spec).await?;
        if submitted.replayed {
            info!(job_id = %submitted.job.id, request_id = ?spec.request_id, "submission replayed: the job was stored before");
        } else {
            info!(job_id = %submitted.job.id, tasks = submitted.tasks.len(), model = %spec.model, "job submitted");
        }
        if let Err(err) = self.app.dispatch.push(&submitted.tasks).await {
            // Postgres has the job; the reconciler pushes it once Redis is back.
            warn!(job_id = %submitted.job.id, error = %err, "dispatch push failed; the reconciler will retry");
        }
        Ok(Response::new(pb::SubmitJobResponse {
            job: Some(convert::job(&submitted.job)),
            replayed: submitted.replayed,
        }))
    }

    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let id = JobId::parse_field("job_id", &request.get_ref().job_id)?;
        let job = self.app.store.get_job(id).await?;
        Ok(Response::new(convert::job(&job)))
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let request = request.into_inner();
        let limit = match request.limit {
            0 => 50,
            n if n > 1000 => {
                return Err(
                    FieldError::new("limit", format!("must be at most 1000 (got {n})")).into(),
                );
            }
            n => n,
        };
        let owner = (!request.owner.is_empty()).then_some(request.owner.as_str());
        let jobs = self.app.store.list_jobs(limit, owner).await?;
        Ok(Response::new(pb::ListJobsResponse {
            jobs: jobs.iter().map(convert::job).collect(),
        }))
    }

    async fn cancel_job(
        &self,
        request: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let id = JobId::parse_field("job_id", &request.get_ref().job_id)?;
        let cancelled = self.app.store.cancel_job(id).await?;
        info!(job_id = %id, tasks = cancelled.len(), "job cancelled");
        if let Err(err) = self.app.dispatch.remove(&cancelled).await {
            // Workers that pop these ids find them cancelled and drop them.
            warn!(job_id = %id, error = %err, "could not remove cancelled tasks from dispatch");
        }
        let job = self.app.store.get_job(id).await?;
        Ok(Response::new(convert::job(&job)))
    }

    async fn cancel_task(
        &self,
        request: Request<pb::CancelTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        control::cancel_task(&self.app, &request.get_ref().task_id)
            .await
            .map(Response::new)
    }

    async fn retry_job(
        &self,
        request: Request<pb::RetryJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        control::retry_job(&self.app, &request.get_ref().job_id)
            .await
            .map(Response::new)
    }

    async fn pause_job(
        &self,
        request: Request<pb::PauseJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        control::set_paused(&self.app, &request.get_ref().job_id, true)
            .await
            .map(Response::new)
    }

    async fn resume_job(
        &self,
        request: Request<pb::ResumeJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        control::set_paused(&self.app, &request.get_ref().job_id, false)
            .await
            .map(Response::new)
    }

    async fn list_workers(
        &self,
        request: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        let limit = match request.get_ref().limit {
            0 => 100,
            n => n.min(10_000),
        };
        let workers = self.app.store.list_workers(limit).await?;
        Ok(Response::new(pb::ListWorkersResponse {
            workers: workers.iter().map(convert::worker).collect(),
        }))
    }

    type WatchJobStream = Streamed<pb::Job>;

    async fn watch_job(
        &self,
        request: Request<pb::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let id = JobId::parse_field("job_id", &request.get_ref().job_id)?;
        let store = self.app.store.clone();
        let interval = self.app.settings.watch_interval;
        let shutdown = self.shutdown.clone();
        // Fail fast on an unknown job, before the stream starts.
        let first = store.get_job(id).await?;
        let stream = async_stream::try_stream! {
            let mut last = convert::job(&first);
            yield last.clone();
            while !last.finished {
                let stopping = tokio::select! {
                    _ = shutdown.cancelled() => true,
                    _ = tokio::time::sleep(interval) => false,
                };
                if stopping {
                    Err(Status::unavailable("the coordinator is shutting down; watch again"))?;
                }
                let now = convert::job(&store.get_job(id).await?);
                if now != last {
                    last = now;
                    yield last.clone();
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_task(
        &self,
        request: Request<pb::GetTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let id = TaskId::parse_field("task_id", &request.get_ref().task_id)?;
        let task = self.app.store.get_task(id).await?;
        Ok(Response::new(convert::task(&task)))
    }

    async fn list_tasks(
        &self,
        request: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let request = request.into_inner();
        let job = JobId::parse_field("job_id", &request.job_id)?;
        let state = pb::TaskState::try_from(request.state).map_err(|_| {
            FieldError::new("state", format!("unknown task state {}", request.state))
        })?;
        let limit = match request.limit {
            0 => 1000,
            n if n > 10_000 => {
                return Err(
                    FieldError::new("limit", format!("must be at most 10000 (got {n})")).into(),
                );
            }
            n => n,
        };
        // An unknown job is an error, not an empty list.
        self.app.store.get_job(job).await?;
        let tasks = self
            .app
            .store
            .list_tasks(&TaskQuery {
                job: Some(job),
                state: TaskState::from_proto(state),
                from_index: request.from_index,
                limit,
            })
            .await?;
        Ok(Response::new(pb::ListTasksResponse {
            tasks: tasks.iter().map(convert::task).collect(),
        }))
    }

    type ReadOutputStream = Streamed<pb::OutputChunk>;

    async fn read_output(
        &self,
        request: Request<pb::ReadOutputRequest>,
    ) -> Result<Response<Self::ReadOutputStream>, Status> {
        let key = request.into_inner().key;
        // Only recorded outputs can be read, never arbitrary bucket keys.
        if !self.app.store.has_output(&key).await? {
            return Err(Status::not_found(format!("output {key:?} not found")));
        }
        let bytes = self.app.storage.get(&key).await.map_err(|err| {
            warn!(key = %key, error = %err, "cannot read output");
            Status::unavailable(format!("cannot read output {key:?} from storage"))
        })?;
        let stream = async_stream::stream! {
            for chunk in bytes.chunks(CHUNK) {
                yield Ok(pb::OutputChunk { data: chunk.to_vec() });
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }
}
