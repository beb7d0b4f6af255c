//! The worker API: register, claim, heartbeat, complete, fail, ping. A worker is
//! bound to the worker token it registered with: a call naming a worker
//! registered with another token (or never registered) is refused, so a
//! token cannot act for another's workers. Every write after a claim is
//! checked against the fencing token by the store; each finished attempt
//! counts for its worker's health (see [`quarantine`]), and its measured
//! device time for its tenant's usage. A claim of a task whose tenant is
//! at a quota is held back (see [`quotas`]). An idle worker pings, which
//! keeps it live; a draining worker is told so by its heartbeats, claims
//! and pings (see [`drain`]).

use fresco_core::{FailureKind, FieldError, ModelCapabilities, TaskId, TaskState, WorkerId, keys};
use fresco_proto::v1 as pb;
use fresco_proto::v1::worker_service_server::WorkerService;
use fresco_store::{
    AttemptOutcome, CompletionReport, FailOutcome, FailReport, Heartbeat, Lease, LeaseToken,
    OutputRecord, StoreError, WorkerInfo,
};
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::error::{ApiError, ApiResult, respond};
use crate::{Coordinator, convert, drain, metrics, quarantine, quotas, requeue, tenancy};

pub struct WorkerApi {
    pub app: Coordinator,
}

impl WorkerApi {
    /// Notes the worker as alive for `fresco workers`; a failure here must
    /// not fail the call it rides on.
    async fn seen(&self, worker: WorkerId, loaded_models: Option<&[String]>) {
        if let Err(err) = self.app.store.worker_seen(worker, loaded_models).await {
            warn!(worker_id = %worker, error = %err, "could not note the worker as seen");
        }
    }
}

impl WorkerApi {
    /// Counts a task that failed for good under its model; a failure to
    /// read the model must not fail the report it rides on.
    async fn count_failed(&self, task: TaskId) {
        match self.app.store.get_task(task).await {
            Ok(task) => metrics::tasks_failed(&task.model, 1),
            Err(err) => {
                warn!(task_id = %task, error = %err, "could not count the failed task in the metrics")
            }
        }
    }

    /// `Forbidden` unless `worker` registered with `token`, the worker
    /// token of the call (none: a farm served without keys, where any
    /// caller may act for any worker). An unknown worker is refused alike,
    /// so the answer tells nothing of other tokens' workers.
    async fn bound(&self, worker: WorkerId, token: Option<&str>) -> ApiResult<()> {
        let Some(token) = token else {
            return Ok(());
        };
        match self.app.store.worker_token(worker).await {
            Ok(Some(registered)) if registered == token => Ok(()),
            Ok(_) | Err(StoreError::NotFound(_)) => {
                warn!(worker_id = %worker, token_id = %token, "call refused: the worker is not registered with this token");
                Err(ApiError::Forbidden(format!(
                    "worker {worker} is not registered with this worker token"
                )))
            }
            Err(err) => Err(err.into()),
        }
    }
}

impl WorkerApi {
    async fn register(
        &self,
        token: Option<&str>,
        request: pb::RegisterWorkerRequest,
    ) -> ApiResult<pb::RegisterWorkerResponse> {
        let id = if request.worker_id.is_empty() {
            WorkerId::new()
        } else {
            WorkerId::parse_field("worker_id", &request.worker_id)?
        };
        for (i, model) in request.models.iter().enumerate() {
            fresco_core::validate::model_id(model)
                .map_err(|e| FieldError::new(format!("models[{i}]"), e.rule))?;
        }
        let capabilities = reported_capabilities(&request)?;
        let info = WorkerInfo {
            id,
            name: request.name,
            device: request.device,
            models: request.models,
            loaded_models: request.loaded_models,
            capabilities,
        };
        self.app.store.register_worker(&info, token).await?;
        let described: Vec<&str> = info.capabilities.iter().map(|c| c.model.as_str()).collect();
        info!(worker_id = %id, name = %info.name, device = %info.device, models = ?info.models, capabilities_for = ?described, "worker registered");
        let settings = &self.app.settings;
        Ok(pb::RegisterWorkerResponse {
            worker_id: id.to_string(),
            lease_seconds: settings.lease.as_secs() as u32,
            heartbeat_seconds: settings.heartbeat.as_secs().max(1) as u32,
            queue_prefix: settings.queue_prefix.clone(),
        })
    }

    async fn claim(
        &self,
        token: Option<&str>,
        request: pb::ClaimTaskRequest,
    ) -> ApiResult<pb::ClaimTaskResponse> {
        let worker = WorkerId::parse_field("worker_id", &request.worker_id)?;
        let task = TaskId::parse_field("task_id", &request.task_id)?;
        self.bound(worker, token).await?;
        self.seen(worker, Some(&request.loaded_models)).await;
        let claim = match self
            .app
            .store
            .claim(task, worker, self.app.settings.lease)
            .await
        {
            Ok(claim) => claim,
            Err(StoreError::Draining(_)) => return Ok(drain::refuse_claim(worker, task)),
            Err(StoreError::TenantAtLimit { message, task }) => {
                quotas::hold_back(&self.app, &task, &message).await;
                return Err(StoreError::OverQuota(message).into());
            }
            Err(err) => return Err(err.into()),
        };
        let traceparent = self.job_traceparent(claim.task.job_id).await;
        let claimed = tracing::info_span!("claimed", otel.name = "task claimed", task_id = %task, worker_id = %worker, attempt = claim.attempt);
        fresco_telemetry::traces::set_parent(&claimed, &traceparent);
        claimed.in_scope(|| {
            info!(task_id = %task, worker_id = %worker, attempt = claim.attempt, "task claimed");
        });
        metrics::dispatch_lag(&claim.task.model, claim.waited());
        Ok(pb::ClaimTaskResponse {
            task: Some(convert::task(&claim.task)),
            attempt: claim.attempt,
            lease_expires_at: Some(convert::timestamp(claim.lease_expires_at)),
            drain: false,
            traceparent,
        })
    }

    /// The trace context of the job (empty when this coordinator exports
    /// no traces, so the store is not asked; when the job is not traced; or
    /// when it cannot be read now: tracing never fails a claim).
    async fn job_traceparent(&self, job: fresco_core::JobId) -> String {
        if !fresco_telemetry::traces::is_traced(&tracing::Span::current()) {
            return String::new();
        }
        match self.app.store.job_traceparent(job).await {
            Ok(traceparent) => traceparent,
            Err(err) => {
                warn!(job_id = %job, error = %err, "could not read the job's trace context");
                String::new()
            }
        }
    }

    async fn ping(
        &self,
        token: Option<&str>,
        request: pb::PingRequest,
    ) -> ApiResult<pb::PingResponse> {
        let worker = WorkerId::parse_field("worker_id", &request.worker_id)?;
        self.bound(worker, token).await?;
        self.seen(worker, Some(&request.loaded_models)).await;
        Ok(pb::PingResponse {
            drain: drain::told_to_drain(&self.app, worker).await,
        })
    }

    async fn beat(
        &self,
        token: Option<&str>,
        request: pb::HeartbeatRequest,
    ) -> ApiResult<pb::HeartbeatResponse> {
        let lease = lease_token(&request.worker_id, &request.task_id, request.attempt)?;
        self.bound(lease.worker, token).await?;
        self.seen(lease.worker, None).await;
        let beat = Heartbeat {
            lease,
            step: request.step,
        };
        let extended = self
            .app
            .store
            .heartbeat(&beat, self.app.settings.lease)
            .await?;
        let drain = drain::told_to_drain(&self.app, lease.worker).await;
        let reply = match extended {
            Lease::Extended(until) => pb::HeartbeatResponse {
                cancel: false,
                lease_expires_at: Some(convert::timestamp(until)),
                drain,
            },
            Lease::Lost => {
                info!(task_id = %lease.task, attempt = lease.attempt, "lease lost; telling the worker to stop");
                pb::HeartbeatResponse {
                    cancel: true,
                    lease_expires_at: None,
                    drain,
                }
            }
        };
        Ok(reply)
    }

    async fn complete(
        &self,
        token: Option<&str>,
        request: pb::CompleteTaskRequest,
    ) -> ApiResult<pb::CompleteTaskResponse> {
        let lease = lease_token(&request.worker_id, &request.task_id, request.attempt)?;
        self.bound(lease.worker, token).await?;
        let task = self.app.store.get_task(lease.task).await?;
        if request.outputs.len() != task.spec.n as usize {
            return Err(FieldError::new(
                "outputs",
                format!(
                    "must hold {} outputs (got {})",
                    task.spec.n,
                    request.outputs.len()
                ),
            )
            .into());
        }
        let dir = keys::attempt_dir(task.job_id, task.id, lease.attempt);
        let mut outputs = Vec::with_capacity(request.outputs.len());
        for (i, o) in request.outputs.iter().enumerate() {
            let expected_tail = format!("{dir}/{}.png", o.index);
            if o.index as usize != i || !o.key.ends_with(&expected_tail) {
                return Err(FieldError::new(
                    format!("outputs[{i}].key"),
                    format!(
                        "must end with {expected_tail:?} for index {i} (got {:?})",
                        o.key
                    ),
                )
                .into());
            }
            reported_sha256(&format!("outputs[{i}].sha256"), &o.sha256)?;
            outputs.push(OutputRecord {
                index: o.index,
                key: o.key.clone(),
                width: o.width,
                height: o.height,
                seed: o.seed,
                bytes: o.bytes,
                sha256: o.sha256.clone(),
            });
        }
        reported_sha256("weights_sha256", &request.weights_sha256)?;
        let report = CompletionReport {
            outputs: &outputs,
            device_ms: request.device_ms,
            weights_sha256: &request.weights_sha256,
        };
        self.app.store.record_completion(&lease, &report).await?;
        info!(task_id = %lease.task, attempt = lease.attempt, images = outputs.len(), "task succeeded");
        // A report sent again (its answer was lost) found the task
        // succeeded already: counted the first time.
        if task.state != TaskState::Succeeded {
            metrics::task_completed(&task.model);
        }
        quarantine::count_attempt(&self.app, lease.worker, AttemptOutcome::Succeeded).await;
        Ok(pb::CompleteTaskResponse {})
    }

    async fn fail(
        &self,
        token: Option<&str>,
        request: pb::FailTaskRequest,
    ) -> ApiResult<pb::FailTaskResponse> {
        let lease = lease_token(&request.worker_id, &request.task_id, request.attempt)?;
        self.bound(lease.worker, token).await?;
        let kind = failure_kind(request.kind)?;
        let outcome = self
            .app
            .store
            .fail(
                &lease,
                &FailReport {
                    message: &request.message,
                    kind,
                    give_back: request.give_back,
                    device_ms: request.device_ms,
                },
                self.app.settings.retry_backoff,
            )
            .await?;
        if !request.give_back && kind.blames_worker() {
            let failed = AttemptOutcome::Failed {
                task: lease.task,
                attempt: lease.attempt,
                message: &request.message,
                kind,
            };
            quarantine::count_attempt(&self.app, lease.worker, failed).await;
        }
        let requeued = match outcome {
            FailOutcome::Requeued(task, not_before) => {
                warn!(task_id = %lease.task, attempt = lease.attempt, give_back = request.give_back, %kind, error = %request.message, ?not_before, "attempt ended; task requeued");
                metrics::retried(&task.model);
                requeue::push_when_due(&self.app, task, not_before).await;
                true
            }
            FailOutcome::Failed => {
                warn!(task_id = %lease.task, attempt = lease.attempt, %kind, error = %request.message, "task failed for good");
                self.count_failed(lease.task).await;
                false
            }
        };
        Ok(pb::FailTaskResponse { requeued })
    }
}

/// A SHA-256 a worker reports: 64 lower-case hex digits, or empty (a
/// worker that does not compute it).
fn reported_sha256(field: &str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() || fresco_core::digest::is_sha256_hex(value) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("must be a SHA-256 as 64 lower-case hex digits, or empty (got {value:?})"),
        ))
    }
}

/// Whose fault a reported failure was; unspecified is the worker's.
fn failure_kind(kind: i32) -> Result<FailureKind, FieldError> {
    pb::FailureKind::try_from(kind)
        .map(FailureKind::from_proto)
        .map_err(|_| {
            FieldError::new(
                "kind",
                format!(
                    "must be FAILURE_KIND_UNSPECIFIED, FAILURE_KIND_REQUEST or FAILURE_KIND_WORKER (got {kind})"
                ),
            )
        })
}

/// The capabilities a registering worker reports, one set per model it
/// serves at most; errors name `capabilities[i]`'s field.
fn reported_capabilities(
    request: &pb::RegisterWorkerRequest,
) -> Result<Vec<ModelCapabilities>, FieldError> {
    let mut all: Vec<ModelCapabilities> = Vec::with_capacity(request.capabilities.len());
    for (i, wire) in request.capabilities.iter().enumerate() {
        let field = format!("capabilities[{i}]");
        let caps = ModelCapabilities::from_proto(wire).map_err(|e| e.under(&field))?;
        if !request.models.contains(&caps.model) {
            return Err(FieldError::new(
                format!("{field}.model"),
                format!("must be one of the worker's models (got {:?})", caps.model),
            ));
        }
        if all.iter().any(|c| c.model == caps.model) {
            return Err(FieldError::new(
                format!("{field}.model"),
                format!("must be reported once (got {:?} again)", caps.model),
            ));
        }
        all.push(caps);
    }
    Ok(all)
}

fn lease_token(worker: &str, task: &str, attempt: u32) -> Result<LeaseToken, FieldError> {
    Ok(LeaseToken {
        worker: WorkerId::parse_field("worker_id", worker)?,
        task: TaskId::parse_field("task_id", task)?,
        attempt,
    })
}

#[tonic::async_trait]
impl WorkerService for WorkerApi {
    async fn register_worker(
        &self,
        request: Request<pb::RegisterWorkerRequest>,
    ) -> Result<Response<pb::RegisterWorkerResponse>, Status> {
        let token = tenancy::worker_token(&request)?;
        metrics::timed("RegisterWorker", async {
            respond(self.register(token.as_deref(), request.into_inner()).await)
        })
        .await
    }

    async fn claim_task(
        &self,
        request: Request<pb::ClaimTaskRequest>,
    ) -> Result<Response<pb::ClaimTaskResponse>, Status> {
        let token = tenancy::worker_token(&request)?;
        metrics::timed("ClaimTask", async {
            respond(self.claim(token.as_deref(), request.into_inner()).await)
        })
        .await
    }

    async fn ping(
        &self,
        request: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        let token = tenancy::worker_token(&request)?;
        respond(self.ping(token.as_deref(), request.into_inner()).await)
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let token = tenancy::worker_token(&request)?;
        metrics::timed("Heartbeat", async {
            respond(self.beat(token.as_deref(), request.into_inner()).await)
        })
        .await
    }

    async fn complete_task(
        &self,
        request: Request<pb::CompleteTaskRequest>,
    ) -> Result<Response<pb::CompleteTaskResponse>, Status> {
        let token = tenancy::worker_token(&request)?;
        metrics::timed("CompleteTask", async {
            respond(self.complete(token.as_deref(), request.into_inner()).await)
        })
        .await
    }

    async fn fail_task(
        &self,
        request: Request<pb::FailTaskRequest>,
    ) -> Result<Response<pb::FailTaskResponse>, Status> {
        let token = tenancy::worker_token(&request)?;
        metrics::timed("FailTask", async {
            respond(self.fail(token.as_deref(), request.into_inner()).await)
        })
        .await
    }
}
