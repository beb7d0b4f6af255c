//! The client API: submit, inspect, watch and cancel jobs, read outputs.
//!
//! Who may call what is one table, in the `JobService` impl below: each
//! call names the least role it needs ([`allowed`]); a job, task or output
//! of another tenant answers as a missing one (see [`tenancy`]).

use std::pin::Pin;

use fresco_core::params::BUILTIN_MODELS;
use fresco_core::{Caller, FieldError, JobId, JobState, Role, TaskId, TaskState, labels, validate};
use fresco_proto::v1 as pb;
use fresco_proto::v1::job_service_server::JobService;
use fresco_store::{JobFilter, TaskQuery};
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::error::{ApiError, ApiResult, respond};
use crate::{
    Coordinator, admission, control, convert, downloads, drain, manifest, metrics, quarantine,
    tenancy, usage, waiting, watch_hub, weights,
};

/// Bytes per `ReadOutput` chunk.
const CHUNK: usize = 1 << 20;

/// The most rows one list call (`ListJobs`, `ListTasks`, `ListWorkers`)
/// returns; a larger `limit` is refused, never cut down silently.
pub const MAX_LIST_LIMIT: u32 = 10_000;

/// A list call's `limit`: `default` when unset (0), refused above
/// [`MAX_LIST_LIMIT`].
fn list_limit(limit: u32, default: u32) -> Result<u32, FieldError> {
    match limit {
        0 => Ok(default),
        n if n > MAX_LIST_LIMIT => Err(FieldError::new(
            "limit",
            format!("must be at most {MAX_LIST_LIMIT} (got {n})"),
        )),
        n => Ok(n),
    }
}

/// The longest `ListJobs.search` text.
pub const MAX_SEARCH_CHARS: usize = 200;

/// A `ListJobs.search` text: none when blank, refused when too long.
fn search_text(search: &str) -> Result<Option<String>, FieldError> {
    let search = search.trim();
    let chars = search.chars().count();
    if chars > MAX_SEARCH_CHARS {
        return Err(FieldError::new(
            "search",
            format!("must be at most {MAX_SEARCH_CHARS} characters (got {chars})"),
        ));
    }
    Ok((!search.is_empty()).then(|| search.to_owned()))
}

pub struct JobApi {
    pub app: Coordinator,
    /// Ends open `WatchJob` streams when the coordinator shuts down, so a
    /// graceful shutdown never waits on a watcher.
    pub shutdown: CancellationToken,
}

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The caller of `request`, once it holds at least `needed` (a client key
/// of that role or above); `PERMISSION_DENIED` naming `call` otherwise.
fn allowed<T>(request: &Request<T>, needed: Role, call: &str) -> Result<Caller, Status> {
    let caller = tenancy::caller(request);
    tenancy::client(&caller, needed, call)?;
    Ok(caller)
}

/// A stream of results as a stream of gRPC answers.
fn streamed<T>(stream: impl Stream<Item = ApiResult<T>> + Send + 'static) -> Streamed<T> {
    Box::pin(stream.map(|item| item.map_err(Status::from)))
}

impl JobApi {
    async fn known_models(&self) -> ApiResult<Vec<String>> {
        let mut models = self.app.store.served_models().await?;
        models.extend(BUILTIN_MODELS.iter().map(|m| (*m).to_owned()));
        models.extend(self.app.settings.extra_models.iter().cloned());
        Ok(models)
    }

    async fn submit(
        &self,
        caller: &Caller,
        request: pb::SubmitJobRequest,
    ) -> ApiResult<pb::SubmitJobResponse> {
        let (tenant, _) = tenancy::client(caller, Role::Submitter, "SubmitJob")?;
        let models = self.known_models().await?;
        let mut spec = validate::job_spec(
            &request,
            &self.app.settings.limits,
            &|model| models.iter().any(|m| m == model),
            &mut rand::random::<u64>,
        )?;
        let known = admission::known_capabilities(self.app.store.as_ref(), &spec.model).await?;
        admission::admit(&spec, &known)?;
        if spec.deadline.is_none() {
            spec.deadline = self.app.settings.queue_timeout;
        }
        spec.tenant = tenant.to_owned();
        spec.traceparent = fresco_telemetry::traces::traceparent(&tracing::Span::current());
        let submitted = self.app.store.submit(&spec).await?;
        if submitted.replayed {
            info!(job_id = %submitted.job.id, request_id = ?spec.request_id, "submission replayed: the job was stored before");
        } else {
            info!(job_id = %submitted.job.id, tasks = submitted.tasks.len(), model = %spec.model, tenant = %spec.tenant, "job submitted");
        }
        weights::publish_or_warn(&self.app).await;
        if let Err(err) = self.app.dispatch.push(&submitted.tasks).await {
            // Postgres has the job; the reconciler pushes it once Redis is back.
            warn!(job_id = %submitted.job.id, error = %err, "dispatch push failed; the reconciler will retry");
        }
        let warnings = waiting::submit_warnings(&self.app, &spec.model).await?;
        for warning in &warnings {
            info!(job_id = %submitted.job.id, warning = %warning, "job accepted with a warning");
        }
        Ok(pb::SubmitJobResponse {
            job: Some(waiting::job_message(&self.app, &submitted.job).await?),
            replayed: submitted.replayed,
            warnings,
        })
    }

    async fn job(&self, caller: &Caller, job_id: &str) -> ApiResult<pb::Job> {
        let id = JobId::parse_field("job_id", job_id)?;
        let job = tenancy::visible_job(&self.app, caller, id).await?;
        waiting::job_message(&self.app, &job).await
    }

    /// The caller's tenant's jobs; every tenant's for an admin asking
    /// `all_tenants`.
    async fn jobs(
        &self,
        caller: &Caller,
        request: pb::ListJobsRequest,
    ) -> ApiResult<pb::ListJobsResponse> {
        let (tenant, role) = tenancy::client(caller, Role::Viewer, "ListJobs")?;
        if request.all_tenants && role != Role::Admin {
            return Err(ApiError::Forbidden(format!(
                "ListJobs with all_tenants needs the admin role; this key is a {role}"
            )));
        }
        let tenant = (!request.all_tenants).then_some(tenant);
        let limit = list_limit(request.limit, 50)?;
        let filter = JobFilter {
            owner: (!request.owner.is_empty()).then(|| request.owner.clone()),
            tenant: tenant.map(str::to_owned),
            labels: labels::check_labels("labels", &request.labels)?,
            state: JobState::from_proto(request.state()),
            model: (!request.model.is_empty()).then(|| request.model.clone()),
            search: search_text(&request.search)?,
            after: (!request.page_token.is_empty())
                .then(|| JobId::parse_field("page_token", &request.page_token))
                .transpose()?,
        };
        let jobs = self.app.store.list_jobs(limit, &filter).await?;
        let next_page_token = match jobs.last() {
            Some(last) if jobs.len() == limit as usize => last.id.to_string(),
            _ => String::new(),
        };
        Ok(pb::ListJobsResponse {
            jobs: waiting::job_messages(&self.app, &jobs).await?,
            next_page_token,
        })
    }

    async fn cancel(&self, caller: &Caller, job_id: &str) -> ApiResult<pb::Job> {
        let id = JobId::parse_field("job_id", job_id)?;
        tenancy::visible_job(&self.app, caller, id).await?;
        let cancelled = self.app.store.cancel_job(id).await?;
        info!(job_id = %id, tasks = cancelled.len(), "job cancelled");
        if let Err(err) = self.app.dispatch.remove(&cancelled).await {
            // Workers that pop these ids find them cancelled and drop them.
            warn!(job_id = %id, error = %err, "could not remove cancelled tasks from dispatch");
        }
        waiting::job_message(&self.app, &self.app.store.get_job(id).await?).await
    }

    async fn workers(
        &self,
        request: &pb::ListWorkersRequest,
    ) -> ApiResult<pb::ListWorkersResponse> {
        let limit = list_limit(request.limit, 100)?;
        let workers = self.app.store.list_workers(limit).await?;
        Ok(pb::ListWorkersResponse {
            workers: workers.iter().map(convert::worker).collect(),
        })
    }

    /// The job now, then each time it changes, until it has finished:
    /// the caller's tenancy checked by its own read, then the job's
    /// shared poll followed (see [`watch_hub`]).
    async fn watch(
        &self,
        caller: &Caller,
        job_id: &str,
    ) -> ApiResult<impl Stream<Item = Result<pb::Job, Status>> + Send + 'static> {
        let id = JobId::parse_field("job_id", job_id)?;
        let hub = &self.app.watches;
        let ticket = hub.ticket();
        // Fail fast on an unknown (or unseen) job, before the stream starts;
        // a job never changes tenant, so later reads need no check.
        let job = tenancy::visible_job(&self.app, caller, id).await?;
        let first = waiting::job_message(&self.app, &job).await?;
        let receiver = hub.subscribe(&self.app, id, ticket, first, &self.shutdown);
        Ok(watch_hub::follow(receiver, self.shutdown.clone()))
    }

    async fn task(&self, caller: &Caller, task_id: &str) -> ApiResult<pb::Task> {
        let id = TaskId::parse_field("task_id", task_id)?;
        Ok(convert::task(
            &tenancy::visible_task(&self.app, caller, id).await?,
        ))
    }

    async fn tasks(
        &self,
        caller: &Caller,
        request: pb::ListTasksRequest,
    ) -> ApiResult<pb::ListTasksResponse> {
        let job = JobId::parse_field("job_id", &request.job_id)?;
        let state = pb::TaskState::try_from(request.state).map_err(|_| {
            FieldError::new("state", format!("unknown task state {}", request.state))
        })?;
        let limit = list_limit(request.limit, 1000)?;
        // An unknown (or unseen) job is an error, not an empty list.
        tenancy::visible_job(&self.app, caller, job).await?;
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
        Ok(pb::ListTasksResponse {
            tasks: tasks.iter().map(convert::task).collect(),
        })
    }

    /// A recorded output's bytes, in chunks.
    async fn output(
        &self,
        caller: &Caller,
        key: String,
    ) -> ApiResult<impl Stream<Item = ApiResult<pb::OutputChunk>> + Send + 'static> {
        // Only recorded outputs can be read, never arbitrary bucket keys,
        // and only those of jobs the caller sees: another tenant's output
        // answers as a missing one.
        let Some(job) = self.app.store.output_job(&key).await? else {
            return Err(ApiError::OutputNotFound(key));
        };
        if !tenancy::sees(caller, &self.app.store.get_job(job).await?.tenant) {
            return Err(ApiError::OutputNotFound(key));
        }
        let bytes = match self.app.storage.get(&key).await {
            Ok(bytes) => bytes,
            Err(source) => return Err(ApiError::OutputUnreadable { key, source }),
        };
        info!(key = %key, bytes = bytes.len(), "output streamed through the coordinator");
        Ok(async_stream::stream! {
            for chunk in bytes.chunks(CHUNK) {
                yield Ok(pb::OutputChunk { data: chunk.to_vec() });
            }
        })
    }
}

#[tonic::async_trait]
impl JobService for JobApi {
    async fn submit_job(
        &self,
        request: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::SubmitJobResponse>, Status> {
        metrics::timed("SubmitJob", async {
            let caller = allowed(&request, Role::Submitter, "SubmitJob")?;
            respond(self.submit(&caller, request.into_inner()).await)
        })
        .await
    }

    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let caller = allowed(&request, Role::Viewer, "GetJob")?;
        respond(self.job(&caller, &request.get_ref().job_id).await)
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let caller = allowed(&request, Role::Viewer, "ListJobs")?;
        respond(self.jobs(&caller, request.into_inner()).await)
    }

    async fn cancel_job(
        &self,
        request: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let caller = allowed(&request, Role::Submitter, "CancelJob")?;
        respond(self.cancel(&caller, &request.get_ref().job_id).await)
    }

    async fn cancel_task(
        &self,
        request: Request<pb::CancelTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let caller = allowed(&request, Role::Submitter, "CancelTask")?;
        respond(control::cancel_task(&self.app, &caller, &request.get_ref().task_id).await)
    }

    async fn retry_job(
        &self,
        request: Request<pb::RetryJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let caller = allowed(&request, Role::Submitter, "RetryJob")?;
        respond(control::retry_job(&self.app, &caller, &request.get_ref().job_id).await)
    }

    async fn pause_job(
        &self,
        request: Request<pb::PauseJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let caller = allowed(&request, Role::Submitter, "PauseJob")?;
        respond(control::set_paused(&self.app, &caller, &request.get_ref().job_id, true).await)
    }

    async fn resume_job(
        &self,
        request: Request<pb::ResumeJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let caller = allowed(&request, Role::Submitter, "ResumeJob")?;
        respond(control::set_paused(&self.app, &caller, &request.get_ref().job_id, false).await)
    }

    async fn set_job_priority(
        &self,
        request: Request<pb::SetJobPriorityRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let caller = allowed(&request, Role::Submitter, "SetJobPriority")?;
        respond(control::set_priority(&self.app, &caller, request.get_ref()).await)
    }

    async fn list_workers(
        &self,
        request: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        allowed(&request, Role::Admin, "ListWorkers")?;
        respond(self.workers(request.get_ref()).await)
    }

    async fn release_worker(
        &self,
        request: Request<pb::ReleaseWorkerRequest>,
    ) -> Result<Response<pb::Worker>, Status> {
        allowed(&request, Role::Admin, "ReleaseWorker")?;
        respond(quarantine::release_worker(&self.app, &request.get_ref().worker_id).await)
    }

    async fn drain_worker(
        &self,
        request: Request<pb::DrainWorkerRequest>,
    ) -> Result<Response<pb::Worker>, Status> {
        allowed(&request, Role::Admin, "DrainWorker")?;
        respond(drain::drain_worker(&self.app, &request.get_ref().worker_id).await)
    }

    type WatchJobStream = Streamed<pb::Job>;

    async fn watch_job(
        &self,
        request: Request<pb::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let caller = allowed(&request, Role::Viewer, "WatchJob")?;
        respond(
            self.watch(&caller, &request.get_ref().job_id)
                .await
                .map(|stream| Box::pin(stream) as Self::WatchJobStream),
        )
    }

    async fn get_task(
        &self,
        request: Request<pb::GetTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let caller = allowed(&request, Role::Viewer, "GetTask")?;
        respond(self.task(&caller, &request.get_ref().task_id).await)
    }

    async fn list_tasks(
        &self,
        request: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let caller = allowed(&request, Role::Viewer, "ListTasks")?;
        respond(self.tasks(&caller, request.into_inner()).await)
    }

    type ReadOutputStream = Streamed<pb::OutputChunk>;

    async fn read_output(
        &self,
        request: Request<pb::ReadOutputRequest>,
    ) -> Result<Response<Self::ReadOutputStream>, Status> {
        let caller = allowed(&request, Role::Viewer, "ReadOutput")?;
        respond(
            self.output(&caller, request.into_inner().key)
                .await
                .map(streamed),
        )
    }

    async fn output_urls(
        &self,
        request: Request<pb::OutputUrlsRequest>,
    ) -> Result<Response<pb::OutputUrlsResponse>, Status> {
        let caller = allowed(&request, Role::Viewer, "OutputUrls")?;
        respond(downloads::output_urls(&self.app, &caller, request.into_inner()).await)
    }

    type JobManifestStream = Streamed<pb::ManifestRow>;

    async fn job_manifest(
        &self,
        request: Request<pb::JobManifestRequest>,
    ) -> Result<Response<Self::JobManifestStream>, Status> {
        let caller = allowed(&request, Role::Viewer, "JobManifest")?;
        respond(
            manifest::job_manifest(&self.app, &caller, request.get_ref())
                .await
                .map(streamed),
        )
    }

    async fn get_usage(
        &self,
        request: Request<pb::GetUsageRequest>,
    ) -> Result<Response<pb::Usage>, Status> {
        let caller = allowed(&request, Role::Viewer, "GetUsage")?;
        respond(usage::get_usage(&self.app, &caller, request.into_inner()).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_shares_one_limit() {
        assert_eq!(list_limit(0, 50), Ok(50), "unset: the call's default");
        assert_eq!(list_limit(MAX_LIST_LIMIT, 50), Ok(MAX_LIST_LIMIT));
        let refused = list_limit(MAX_LIST_LIMIT + 1, 50).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "limit: must be at most 10000 (got 10001)"
        );
    }
}
