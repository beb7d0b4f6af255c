//! One claimed task, end to end: heartbeat while sampling, upload the
//! images under this attempt's keys, then report. A lost lease stops the
//! sampler within one step and records nothing; a shutdown past its grace
//! gives the task back.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use fresco_core::{JobId, TaskId, keys};
use fresco_pipeline::ModelCache;
use fresco_proto::v1 as pb;
use fresco_storage::Storage;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::coordinator::{CoordinatorClient, task_not_ours, with_retries};
use crate::render::{Progress, RenderedImage, render};

/// What the task needs from its worker.
pub struct TaskContext {
    pub client: CoordinatorClient,
    pub storage: Storage,
    pub cache: Arc<ModelCache>,
    pub worker_id: String,
    pub heartbeat: Duration,
    pub report_patience: Duration,
    /// Cancelled when the worker must give its task back (shutdown grace over).
    pub give_back: CancellationToken,
}

/// How a task ended on this worker.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    Succeeded,
    Failed,
    GivenBack,
    /// The lease was lost (cancelled, or expired and re-leased).
    LeaseLost,
    /// The report could not be delivered; the lease will expire.
    Unreported,
}

pub async fn run(ctx: &TaskContext, task: pb::Task, attempt: u32) -> Ended {
    let progress = Arc::new(Progress::default());
    let heartbeat = spawn_heartbeat(ctx, &task, attempt, progress.clone());
    let sampling = sample(ctx.cache.clone(), task.clone(), progress.clone());
    let give_back = ctx.give_back.clone();
    let cancel_on_give_back = {
        let progress = progress.clone();
        tokio::spawn(async move {
            give_back.cancelled().await;
            progress.cancel.store(true, Ordering::Relaxed);
        })
    };
    let outcome = sampling.await;
    cancel_on_give_back.abort();
    let lost = progress.cancel.load(Ordering::Relaxed) && !ctx.give_back.is_cancelled();
    let result = if lost {
        info!(task_id = %task.id, attempt, "lease lost; the task stopped and records nothing");
        Ended::LeaseLost
    } else {
        match outcome {
            Ok(Ok(images)) => match upload(ctx, &task, attempt, &images).await {
                Ok(outputs) => report_success(ctx, &task, attempt, outputs).await,
                Err(err) => {
                    report_failure(ctx, &task, attempt, format!("storage: {err:#}"), false).await
                }
            },
            Ok(Err(_)) | Err(_) if ctx.give_back.is_cancelled() => {
                report_failure(ctx, &task, attempt, "worker shutting down".into(), true).await
            }
            Ok(Err(err)) => report_failure(ctx, &task, attempt, format!("{err:#}"), false).await,
            Err(panicked) => report_failure(ctx, &task, attempt, panicked, false).await,
        }
    };
    heartbeat.abort();
    result
}

/// Samples `task` on a blocking thread. A panic inside sampling comes back
/// as `Err("sampling panicked: ...")`, to be reported as the attempt's
/// failure; the worker itself carries on with its next task.
pub async fn sample(
    cache: Arc<ModelCache>,
    task: pb::Task,
    progress: Arc<Progress>,
) -> Result<anyhow::Result<Vec<RenderedImage>>, String> {
    tokio::task::spawn_blocking(move || render(&cache, &task, &progress))
        .await
        .map_err(|join| {
            let message = match join.try_into_panic() {
                Ok(panic) => panic_message(panic.as_ref()),
                Err(join) => join.to_string(),
            };
            format!("sampling panicked: {message}")
        })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn spawn_heartbeat(
    ctx: &TaskContext,
    task: &pb::Task,
    attempt: u32,
    progress: Arc<Progress>,
) -> tokio::task::JoinHandle<()> {
    let client = ctx.client.clone();
    let every = ctx.heartbeat;
    let request = pb::HeartbeatRequest {
        worker_id: ctx.worker_id.clone(),
        task_id: task.id.clone(),
        attempt,
        step: 0,
        total_steps: task.steps,
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let beat = pb::HeartbeatRequest {
                step: progress.step.load(Ordering::Relaxed),
                ..request.clone()
            };
            match client.heartbeat(beat).await {
                Ok(reply) if reply.cancel => {
                    progress.cancel.store(true, Ordering::Relaxed);
                    return;
                }
                Ok(_) => {}
                Err(status) => {
                    warn!(task_id = %request.task_id, code = ?status.code(), error = %status.message(), "heartbeat failed")
                }
            }
        }
    })
}

async fn upload(
    ctx: &TaskContext,
    task: &pb::Task,
    attempt: u32,
    images: &[RenderedImage],
) -> anyhow::Result<Vec<pb::Output>> {
    let job: JobId = task.job_id.parse()?;
    let task_id: TaskId = task.id.parse()?;
    let mut outputs = Vec::with_capacity(images.len());
    for image in images {
        let key = keys::output_key(ctx.storage.prefix(), job, task_id, attempt, image.index);
        ctx.storage
            .put(&key, Bytes::from(image.png.clone()))
            .await?;
        outputs.push(pb::Output {
            index: image.index,
            key,
            width: image.width,
            height: image.height,
            seed: image.seed,
            bytes: image.png.len() as u64,
        });
    }
    Ok(outputs)
}

async fn report_success(
    ctx: &TaskContext,
    task: &pb::Task,
    attempt: u32,
    outputs: Vec<pb::Output>,
) -> Ended {
    let request = pb::CompleteTaskRequest {
        worker_id: ctx.worker_id.clone(),
        task_id: task.id.clone(),
        attempt,
        outputs: outputs.clone(),
    };
    match with_retries("complete", ctx.report_patience, || {
        ctx.client.complete(request.clone())
    })
    .await
    {
        Ok(()) => {
            info!(task_id = %task.id, attempt, images = outputs.len(), "task succeeded");
            Ended::Succeeded
        }
        Err(status) if task_not_ours(&status) => {
            warn!(task_id = %task.id, attempt, error = %status.message(), "completion refused; removing this attempt's objects");
            for output in &outputs {
                if let Err(err) = ctx.storage.delete(&output.key).await {
                    warn!(key = %output.key, error = %err, "could not remove an unreferenced object");
                }
            }
            Ended::LeaseLost
        }
        Err(status) => {
            warn!(task_id = %task.id, attempt, code = ?status.code(), error = %status.message(), "could not report the result");
            Ended::Unreported
        }
    }
}

async fn report_failure(
    ctx: &TaskContext,
    task: &pb::Task,
    attempt: u32,
    message: String,
    give_back: bool,
) -> Ended {
    warn!(task_id = %task.id, attempt, give_back, error = %message, "attempt did not succeed");
    let request = pb::FailTaskRequest {
        worker_id: ctx.worker_id.clone(),
        task_id: task.id.clone(),
        attempt,
        message,
        give_back,
        kind: pb::FailureKind::Unspecified as i32,
    };
    match with_retries("fail", ctx.report_patience, || {
        ctx.client.fail(request.clone())
    })
    .await
    {
        Ok(_) if give_back => Ended::GivenBack,
        Ok(_) => Ended::Failed,
        Err(status) if task_not_ours(&status) => Ended::LeaseLost,
        Err(status) => {
            warn!(task_id = %task.id, code = ?status.code(), error = %status.message(), "could not report the failure");
            Ended::Unreported
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use candle_core::Device;
    use fresco_pipeline::{GenerateParams, GeneratedImage, Pipeline};

    use super::*;

    /// A model whose sampling fails as a device might: by panicking, or by
    /// running out of memory.
    struct Faulty {
        panics: bool,
    }

    impl Pipeline for Faulty {
        fn model_id(&self) -> &str {
            "faulty"
        }
        fn samplers(&self) -> &'static [&'static str] {
            &["euler"]
        }
        fn memory_bytes(&self) -> u64 {
            1
        }
        fn generate(
            &self,
            _params: &GenerateParams,
            _on_step: &mut dyn FnMut(fresco_pipeline::Progress) -> ControlFlow<()>,
        ) -> fresco_pipeline::Result<Vec<GeneratedImage>> {
            if self.panics {
                panic!("index out of bounds: the len is 3 but the index is 7");
            }
            Err(fresco_pipeline::Error::Internal(
                "CUDA_ERROR_OUT_OF_MEMORY: out of memory".into(),
            ))
        }
    }

    fn task(model: &str) -> pb::Task {
        pb::Task {
            id: TaskId::new().to_string(),
            job_id: JobId::new().to_string(),
            model: model.into(),
            prompt: "a red circle".into(),
            seed: 1,
            steps: 2,
            width: 16,
            height: 16,
            guidance: 4.0,
            n: 1,
            sampler: "euler".into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_panic_or_an_out_of_memory_error_fails_the_attempt_and_the_worker_goes_on() {
        let cache = Arc::new(ModelCache::with_loader(
            1 << 30,
            Device::Cpu,
            Box::new(|model: &str, device: &Device| match model {
                "panics" => Ok(Arc::new(Faulty { panics: true }) as Arc<dyn Pipeline>),
                "out-of-memory" => Ok(Arc::new(Faulty { panics: false }) as Arc<dyn Pipeline>),
                other => fresco_dit::builtin::load(other, device),
            }),
        ));
        let progress = Arc::new(Progress::default());

        let panicked = sample(cache.clone(), task("panics"), progress.clone()).await;
        assert_eq!(
            panicked.err().as_deref(),
            Some("sampling panicked: index out of bounds: the len is 3 but the index is 7")
        );
        let oom = sample(cache.clone(), task("out-of-memory"), progress.clone())
            .await
            .expect("no panic");
        let Err(err) = oom else {
            panic!("running out of memory must fail the attempt");
        };
        let message = format!("{err:#}");
        assert!(message.contains("out of memory"), "{message}");

        // The same worker renders its next task.
        let images = sample(cache, task("tiny-random-dit"), progress)
            .await
            .expect("no panic")
            .expect("rendered");
        assert_eq!(images.len(), 1);
        assert!(images[0].png.starts_with(b"\x89PNG"));
    }
}
