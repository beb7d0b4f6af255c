//! One claimed task, end to end: heartbeat while sampling, upload the
//! images under this attempt's keys, then report (a success with each
//! image's SHA-256 and the model's weights hash, a failure with its kind,
//! from [`crate::failure`]) with the device time sampling took (wall time
//! of the render, the model's load included when it was not warm). A lost
//! lease stops the sampler within one step and records nothing; a shutdown
//! past its grace gives the task back; a heartbeat answered with `drain`
//! marks the worker draining, and the task runs on to its report.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fresco_core::{FailureKind, JobId, TaskId, keys};
use fresco_pipeline::ModelCache;
use fresco_proto::v1 as pb;
use fresco_storage::Storage;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, warn};

use crate::coordinator::{CoordinatorClient, task_not_ours, with_retries};
use crate::failure::AttemptFailure;
use crate::metrics;
use crate::render::{Progress, Rendered, RenderedImage, render};

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
    /// Cancelled once the coordinator says this worker is draining (a
    /// heartbeat's or a claim's answer): it finishes the task it runs,
    /// claims nothing more and exits.
    pub drain: CancellationToken,
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
    let started = Instant::now();
    let outcome = sampling.await;
    let sampled = Sampled {
        attempt,
        device_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    cancel_on_give_back.abort();
    let lost = progress.cancel.load(Ordering::Relaxed) && !ctx.give_back.is_cancelled();
    let result = if lost {
        info!(task_id = %task.id, attempt, "lease lost; the task stopped and records nothing");
        Ended::LeaseLost
    } else {
        match outcome {
            Ok(rendered) => match upload(ctx, &task, attempt, &rendered.images)
                .instrument(tracing::info_span!(
                    "upload",
                    otel.name = "upload",
                    images = rendered.images.len()
                ))
                .await
            {
                Ok(outputs) => {
                    report_success(ctx, &task, sampled, outputs, rendered.weights_sha256).await
                }
                Err(err) => {
                    let failure = AttemptFailure::Storage(err);
                    report_failure(ctx, &task, sampled, Report::Failed(&failure)).await
                }
            },
            Err(_) if ctx.give_back.is_cancelled() => {
                report_failure(ctx, &task, sampled, Report::GiveBack).await
            }
            Err(failure) => report_failure(ctx, &task, sampled, Report::Failed(&failure)).await,
        }
    };
    heartbeat.abort();
    result
}

/// An attempt that sampled (or tried to): its number, and the device time
/// its sampling took, which its report carries for the tenant's usage.
#[derive(Debug, Clone, Copy)]
struct Sampled {
    attempt: u32,
    device_ms: u64,
}

/// Samples `task` on a blocking thread. A panic inside sampling comes back
/// as [`AttemptFailure::Panicked`], to be reported as the attempt's
/// failure; the worker itself carries on with its next task.
pub async fn sample(
    cache: Arc<ModelCache>,
    task: pb::Task,
    progress: Arc<Progress>,
) -> Result<Rendered, AttemptFailure> {
    let span = tracing::info_span!("sample", otel.name = "sample", model = %task.model, steps = task.steps);
    tokio::task::spawn_blocking(move || span.in_scope(|| render(&cache, &task, &progress)))
        .await
        .unwrap_or_else(|join| {
            let message = match join.try_into_panic() {
                Ok(panic) => panic_message(panic.as_ref()),
                Err(join) => join.to_string(),
            };
            Err(AttemptFailure::Panicked(message))
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
    let drain = ctx.drain.clone();
    let every = ctx.heartbeat;
    let request = pb::HeartbeatRequest {
        worker_id: ctx.worker_id.clone(),
        task_id: task.id.clone(),
        attempt,
        step: 0,
        total_steps: task.steps,
    };
    let beats = async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let beat = pb::HeartbeatRequest {
                step: progress.step.load(Ordering::Relaxed),
                ..request.clone()
            };
            match client.heartbeat(beat).await {
                Ok(reply) => {
                    if reply.drain && !drain.is_cancelled() {
                        info!(task_id = %request.task_id, "the coordinator drains this worker: finishing this task, then exiting");
                        drain.cancel();
                    }
                    if reply.cancel {
                        progress.cancel.store(true, Ordering::Relaxed);
                        return;
                    }
                }
                Err(status) => {
                    warn!(task_id = %request.task_id, code = ?status.code(), error = %status.message(), "heartbeat failed")
                }
            }
        }
    };
    // The heartbeats join the task's trace.
    tokio::spawn(beats.in_current_span())
}

async fn upload(
    ctx: &TaskContext,
    task: &pb::Task,
    attempt: u32,
    images: &[RenderedImage],
) -> anyhow::Result<Vec<pb::Output>> {
    let job: JobId = task.job_id.parse()?;
    let task_id: TaskId = task.id.parse()?;
    let started = Instant::now();
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
            sha256: image.sha256.clone(),
        });
    }
    let bytes = outputs.iter().map(|o| o.bytes).sum();
    metrics::uploaded(&task.model, started.elapsed(), bytes);
    Ok(outputs)
}

async fn report_success(
    ctx: &TaskContext,
    task: &pb::Task,
    sampled: Sampled,
    outputs: Vec<pb::Output>,
    weights_sha256: String,
) -> Ended {
    let attempt = sampled.attempt;
    let request = pb::CompleteTaskRequest {
        worker_id: ctx.worker_id.clone(),
        task_id: task.id.clone(),
        attempt,
        outputs: outputs.clone(),
        device_ms: sampled.device_ms,
        weights_sha256,
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

/// How an attempt that did not succeed is reported.
enum Report<'a> {
    /// It failed: whose fault it was decides what happens to the task.
    Failed(&'a AttemptFailure),
    /// The worker is shutting down: the task goes back, no failure counted.
    GiveBack,
}

async fn report_failure(
    ctx: &TaskContext,
    task: &pb::Task,
    sampled: Sampled,
    report: Report<'_>,
) -> Ended {
    let attempt = sampled.attempt;
    let (message, kind, give_back) = match report {
        Report::Failed(failure) => (failure.message(), failure.kind(), false),
        Report::GiveBack => ("worker shutting down".to_owned(), FailureKind::Worker, true),
    };
    warn!(task_id = %task.id, attempt, give_back, %kind, error = %message, "attempt did not succeed");
    let request = pb::FailTaskRequest {
        worker_id: ctx.worker_id.clone(),
        task_id: task.id.clone(),
        attempt,
        message,
        give_back,
        kind: kind.to_proto() as i32,
        device_ms: sampled.device_ms,
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
    use std::sync::atomic::AtomicU32;

    use candle_core::Device;
    use fresco_pipeline::{GenerateParams, GeneratedImage, Pipeline};

    use super::*;

    /// How [`Faulty`] fails.
    #[derive(Clone, Copy)]
    enum Fault {
        Panics,
        OutOfMemory,
    }

    /// A model whose sampling fails as a device might: by panicking, or by
    /// running out of memory.
    struct Faulty {
        fault: Fault,
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
            match self.fault {
                Fault::Panics => panic!("index out of bounds: the len is 3 but the index is 7"),
                Fault::OutOfMemory => Err(fresco_pipeline::Error::Internal(
                    "CUDA_ERROR_OUT_OF_MEMORY: out of memory".into(),
                )),
            }
        }
    }

    /// A real model on a device with memory for one image at a time: a
    /// batch of several runs out of memory. Counts the batches it was asked.
    struct OneAtATime {
        inner: Arc<dyn Pipeline>,
        batches: Arc<AtomicU32>,
    }

    impl Pipeline for OneAtATime {
        fn model_id(&self) -> &str {
            self.inner.model_id()
        }
        fn samplers(&self) -> &'static [&'static str] {
            self.inner.samplers()
        }
        fn memory_bytes(&self) -> u64 {
            self.inner.memory_bytes()
        }
        fn generate(
            &self,
            params: &GenerateParams,
            on_step: &mut dyn FnMut(fresco_pipeline::Progress) -> ControlFlow<()>,
        ) -> fresco_pipeline::Result<Vec<GeneratedImage>> {
            self.batches.fetch_add(1, Ordering::SeqCst);
            if params.n > 1 {
                return Err(fresco_pipeline::Error::Candle(candle_core::Error::Msg(
                    "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")".into(),
                )));
            }
            self.inner.generate(params, on_step)
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

    /// A cache of the faulty models, the batch-limited `one-at-a-time` (over
    /// `tiny-random-dit`, counting into `batches`) and the built-in ones.
    fn cache(batches: Arc<AtomicU32>) -> Arc<ModelCache> {
        Arc::new(ModelCache::with_loader(
            1 << 30,
            Device::Cpu,
            Box::new(move |model: &str, device: &Device| match model {
                "panics" => Ok(Arc::new(Faulty {
                    fault: Fault::Panics,
                }) as Arc<dyn Pipeline>),
                "out-of-memory" => Ok(Arc::new(Faulty {
                    fault: Fault::OutOfMemory,
                }) as Arc<dyn Pipeline>),
                "one-at-a-time" => Ok(Arc::new(OneAtATime {
                    inner: fresco_dit::builtin::load("tiny-random-dit", device)?,
                    batches: batches.clone(),
                }) as Arc<dyn Pipeline>),
                other => fresco_dit::builtin::load(other, device),
            }),
        ))
    }

    #[tokio::test]
    async fn a_panic_or_an_out_of_memory_error_fails_the_attempt_and_the_worker_goes_on() {
        let cache = cache(Arc::default());
        let progress = Arc::new(Progress::default());

        let panicked = sample(cache.clone(), task("panics"), progress.clone())
            .await
            .expect_err("a panic fails the attempt");
        assert_eq!(
            panicked.message(),
            "sampling panicked: index out of bounds: the len is 3 but the index is 7"
        );
        assert_eq!(panicked.kind(), FailureKind::Worker);
        let oom = sample(cache.clone(), task("out-of-memory"), progress.clone())
            .await
            .expect_err("running out of memory must fail the attempt");
        assert!(oom.message().contains("out of memory"), "{oom}");
        assert_eq!(oom.kind(), FailureKind::Worker);

        // The same worker renders its next task.
        let images = sample(cache, task("tiny-random-dit"), progress)
            .await
            .expect("rendered")
            .images;
        assert_eq!(images.len(), 1);
        assert!(images[0].png.starts_with(b"\x89PNG"));
    }

    #[tokio::test]
    async fn a_batch_out_of_memory_is_rendered_one_image_at_a_time_as_the_same_images() {
        let batches = Arc::new(AtomicU32::new(0));
        let cache = cache(batches.clone());
        let progress = Arc::new(Progress::default());
        let batch = pb::Task {
            n: 3,
            seed: u64::MAX - 1,
            ..task("one-at-a-time")
        };
        let split = sample(cache.clone(), batch.clone(), progress.clone())
            .await
            .expect("rendered one image at a time")
            .images;
        assert_eq!(
            batches.load(Ordering::SeqCst),
            1 + 3,
            "the batch, then 3 alone"
        );

        assert_eq!(split.len(), 3);
        for (k, image) in split.iter().enumerate() {
            assert_eq!(image.index, k as u32, "re-indexed as its place in the task");
            assert_eq!(
                image.seed,
                fresco_pipeline::image_seed(batch.seed, k as u64)
            );
            assert!(image.png.starts_with(b"\x89PNG"));
        }

        // The same images as one batch on a device with room for it.
        let params = crate::render::params_of(&batch);
        let tiny = fresco_dit::builtin::load("tiny-random-dit", &Device::Cpu).expect("tiny");
        let limited = OneAtATime {
            inner: tiny.clone(),
            batches: Arc::default(),
        };
        let mut go_on = |_: fresco_pipeline::Progress| ControlFlow::Continue(());
        let alone = crate::render::generate(&limited, &params, &mut go_on).expect("split");
        let whole = tiny.generate(&params, &mut go_on).expect("one batch");
        assert_eq!(whole.len(), 3);
        for (k, (alone, batched)) in alone.iter().zip(&whole).enumerate() {
            assert_eq!((alone.index, alone.seed), (batched.index, batched.seed));
            assert_eq!(alone.rgb, batched.rgb, "image {k} is the batch's image {k}");
        }

        // One image that does not fit is the worker's failure, not retried.
        batches.store(0, Ordering::SeqCst);
        let failed = sample(
            Arc::new(ModelCache::with_loader(
                1 << 30,
                Device::Cpu,
                Box::new(|_: &str, _: &Device| {
                    Ok(Arc::new(Faulty {
                        fault: Fault::OutOfMemory,
                    }) as Arc<dyn Pipeline>)
                }),
            )),
            task("out-of-memory"),
            Arc::new(Progress::default()),
        )
        .await
        .expect_err("n = 1 has nothing smaller to try");
        assert_eq!(failed.kind(), FailureKind::Worker);
    }
}
