//! Whose fault a failed attempt was: every way an attempt can fail on this
//! worker ([`AttemptFailure`]) and, in one place, the rules that map each
//! to the [`FailureKind`] the worker reports.
//!
//! - `request`: parameters the model cannot run or a prompt it cannot encode
//!   (the pipeline's `InvalidParams` and `UnknownSampler`, also when a model
//!   family wraps them). Another worker would fail the same way, so the task
//!   fails at once and this worker is not blamed.
//! - `worker`: everything else — loading the model (whatever went wrong),
//!   tensor and device errors, running out of memory, a panic while
//!   sampling, encoding, storage, internal errors, and anything not
//!   recognised.

use std::error::Error as StdError;

use fresco_core::FailureKind;
use fresco_pipeline::Error as PipelineError;

/// Why an attempt failed on this worker.
#[derive(Debug, thiserror::Error)]
pub enum AttemptFailure {
    /// The model could not be loaded: its files, its config, the device.
    #[error("loading the model: {0}")]
    Load(#[source] PipelineError),
    /// Sampling failed.
    #[error("{0}")]
    Generate(#[source] PipelineError),
    /// Encoding an image as PNG failed.
    #[error("encoding the image: {0}")]
    Encode(#[source] crate::png::Error),
    /// Sampling panicked; the worker carries on.
    #[error("sampling panicked: {0}")]
    Panicked(String),
    /// The images could not be stored.
    #[error("storage: {0:#}")]
    Storage(anyhow::Error),
}

impl AttemptFailure {
    /// Whose fault it was.
    pub fn kind(&self) -> FailureKind {
        match self {
            AttemptFailure::Generate(err) => generate_kind(err),
            AttemptFailure::Load(_)
            | AttemptFailure::Encode(_)
            | AttemptFailure::Panicked(_)
            | AttemptFailure::Storage(_) => FailureKind::Worker,
        }
    }

    /// The message the attempt's failure reports: this error and its causes.
    pub fn message(&self) -> String {
        let mut message = self.to_string();
        let mut source = StdError::source(self).and_then(StdError::source);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        message
    }
}

/// Whose fault a failure of sampling is: the request's when the pipeline
/// says the parameters or prompt cannot be run (directly, or wrapped by a
/// model family), else the worker's.
pub fn generate_kind(err: &PipelineError) -> FailureKind {
    match err {
        PipelineError::InvalidParams(_) | PipelineError::UnknownSampler { .. } => {
            FailureKind::Request
        }
        PipelineError::Model { source, .. } if wraps_invalid_params(source.as_ref()) => {
            FailureKind::Request
        }
        _ => FailureKind::Worker,
    }
}

/// Whether a model family's error, or one of its causes, says the
/// parameters are invalid.
fn wraps_invalid_params(err: &(dyn StdError + 'static)) -> bool {
    causes(err).any(|cause| {
        matches!(
            cause.downcast_ref::<PipelineError>(),
            Some(PipelineError::InvalidParams(_) | PipelineError::UnknownSampler { .. })
        ) || matches!(
            cause.downcast_ref::<fresco_diffusers::Error>(),
            Some(fresco_diffusers::Error::InvalidParams { .. })
        )
    })
}

/// Whether a failure of sampling is the device running out of memory (CUDA,
/// Metal or the host allocator, as any error in its chain words it): a
/// smaller batch may fit.
pub fn is_out_of_memory(err: &PipelineError) -> bool {
    causes(err).any(|cause| {
        let text = cause.to_string().to_ascii_lowercase();
        text.contains("out of memory") || text.contains("out_of_memory")
    })
}

/// `err` and its causes, outermost first.
fn causes<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |e| StdError::source(*e))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn model(source: impl StdError + Send + Sync + 'static) -> PipelineError {
        PipelineError::Model {
            model: "sd".into(),
            source: Box::new(source),
        }
    }

    fn io() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied")
    }

    #[test]
    fn parameters_and_prompts_the_model_cannot_run_are_the_requests_fault() {
        let request = [
            PipelineError::InvalidParams("caption must have 1..=32 tokens, got 0".into()),
            PipelineError::UnknownSampler {
                sampler: "plms".into(),
                supported: "euler".into(),
            },
            model(fresco_diffusers::Error::InvalidParams {
                field: "width",
                rule: "must be a multiple of 8".into(),
            }),
            model(PipelineError::InvalidParams("nested".into())),
        ];
        for err in request {
            let failure = AttemptFailure::Generate(err);
            assert_eq!(failure.kind(), FailureKind::Request, "{failure}");
        }
    }

    #[test]
    fn the_device_memory_model_files_and_storage_are_the_workers_fault() {
        let candle = candle_core::Error::Msg("CUDA_ERROR_ILLEGAL_ADDRESS".into());
        let worker = [
            AttemptFailure::Generate(PipelineError::Candle(candle)),
            AttemptFailure::Generate(PipelineError::Internal(
                "CUDA_ERROR_OUT_OF_MEMORY: out of memory".into(),
            )),
            AttemptFailure::Generate(PipelineError::Device("cuda:3: no such GPU".into())),
            AttemptFailure::Generate(model(fresco_diffusers::Error::MissingTensor {
                path: PathBuf::from("unet.safetensors"),
                name: "conv_in.weight".into(),
                expected: vec![320, 4, 3, 3],
            })),
            AttemptFailure::Generate(PipelineError::Cancelled),
            AttemptFailure::Load(PipelineError::MissingModelFile(PathBuf::from(
                "model.safetensors",
            ))),
            AttemptFailure::Load(PipelineError::Config("d_model must be even".into())),
            AttemptFailure::Load(PipelineError::Io {
                path: PathBuf::from("config.json"),
                source: io(),
            }),
            AttemptFailure::Load(PipelineError::UnknownModel("gone".into())),
            // A load is never the request's fault, whatever the error says.
            AttemptFailure::Load(PipelineError::InvalidParams("at load".into())),
            AttemptFailure::Load(model(io())),
            AttemptFailure::Encode(crate::png::Error::InvalidImage("0x0".into())),
            AttemptFailure::Panicked("index out of bounds".into()),
            AttemptFailure::Storage(anyhow::anyhow!("connection refused")),
        ];
        for failure in worker {
            assert_eq!(failure.kind(), FailureKind::Worker, "{failure}");
        }
        let json = serde_json::from_str::<u32>("x").expect_err("not json");
        assert_eq!(
            AttemptFailure::Load(PipelineError::Json(json)).kind(),
            FailureKind::Worker
        );
    }

    #[test]
    fn out_of_memory_is_recognised_anywhere_in_the_chain() {
        assert!(is_out_of_memory(&PipelineError::Internal(
            "CUDA_ERROR_OUT_OF_MEMORY".into()
        )));
        assert!(is_out_of_memory(&PipelineError::Candle(
            candle_core::Error::Msg(
                "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")".into()
            )
        )));
        assert!(is_out_of_memory(&model(std::io::Error::other(
            "Metal: Out of memory allocating 2 GiB"
        ))));
        assert!(!is_out_of_memory(&PipelineError::Internal(
            "shape mismatch".into()
        )));
        assert!(!is_out_of_memory(&PipelineError::InvalidParams(
            "memory".into()
        )));
    }

    #[test]
    fn the_message_names_the_cause_once() {
        let failure = AttemptFailure::Load(PipelineError::Io {
            path: PathBuf::from("config.json"),
            source: io(),
        });
        assert_eq!(
            failure.message(),
            "loading the model: i/o error on config.json: denied"
        );
        let storage =
            AttemptFailure::Storage(anyhow::anyhow!("connection refused").context("putting 0.png"));
        assert_eq!(
            storage.message(),
            "storage: putting 0.png: connection refused"
        );
    }
}
