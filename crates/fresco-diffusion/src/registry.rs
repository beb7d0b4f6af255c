//! Model registry: maps model ids to pipeline constructors.
//!
//! Built-in models need no files: `tiny-random-dit` (the tiny DiT with seeded
//! random weights, [`DitConfig::tiny`]) and `tiny-random-dit-b` (same architecture,
//! different weight seed — handy for exercising model switching and cache
//! eviction). Trained models are loaded with [`DitPipeline::from_dir`].

use std::sync::Arc;

use candle_core::Device;
use tracing::debug;

use crate::config::DitConfig;
use crate::error::{Error, Result};
use crate::pipeline::DitPipeline;
use crate::types::Pipeline;

/// Id of the default built-in model.
pub const TINY_RANDOM_DIT: &str = "tiny-random-dit";
/// Id of the second built-in model (same architecture, other weights).
pub const TINY_RANDOM_DIT_B: &str = "tiny-random-dit-b";

const BUILTIN: &[&str] = &[TINY_RANDOM_DIT, TINY_RANDOM_DIT_B];

/// Ids of the models [`load`] can construct without any files.
pub fn builtin_models() -> &'static [&'static str] {
    BUILTIN
}

/// Weight seed of a built-in model, `None` for unknown ids.
fn builtin_seed(model_id: &str) -> Option<u64> {
    match model_id {
        TINY_RANDOM_DIT => Some(0x0F4E_5C00_0000_0001),
        TINY_RANDOM_DIT_B => Some(0x0F4E_5C00_0000_0002),
        _ => None,
    }
}

/// Loads the pipeline for `model_id` on `device`; [`Error::UnknownModel`] for ids
/// that are not built in.
pub fn load(model_id: &str, device: &Device) -> Result<Arc<dyn Pipeline>> {
    let seed = builtin_seed(model_id).ok_or_else(|| Error::UnknownModel(model_id.to_owned()))?;
    debug!(model = model_id, "constructing built-in model");
    Ok(Arc::new(DitPipeline::random(
        model_id,
        DitConfig::tiny(),
        seed,
        device,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_load_and_unknown_is_rejected() {
        assert!(builtin_models().contains(&"tiny-random-dit"));
        for id in builtin_models() {
            let p = load(id, &Device::Cpu).unwrap();
            assert_eq!(p.model_id(), *id);
            assert!(p.memory_bytes() > 100_000, "{}", p.memory_bytes());
            assert!(p.samplers().contains(&"euler") && p.samplers().contains(&"heun"));
        }
        match load("sdxl", &Device::Cpu) {
            Err(Error::UnknownModel(id)) => assert_eq!(id, "sdxl"),
            other => panic!(
                "expected UnknownModel, got {:?}",
                other.map(|p| p.model_id().to_owned())
            ),
        }
    }
}
