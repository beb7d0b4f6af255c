//! The built-in `noop` model ([`NOOP`]): it samples nothing and renders
//! blank (white) images of the asked size and count, reporting every step
//! as done at once, so a task of it goes through every farm path — claim,
//! progress, upload, PNG text chunks, completion — at no compute cost. It is
//! for benchmarks of the farm and for users trying one. Its family
//! ([`Family::Noop`](crate::Family::Noop)) accepts every sampler and knob
//! and ignores them; it has no weights (its weights hash is that of no
//! bytes).

use std::borrow::Cow;
use std::ops::ControlFlow;
use std::sync::Arc;

use candle_core::Device;
pub use fresco_core::capabilities::NOOP;
use fresco_core::capabilities::{Family, all_samplers};

use crate::error::{Error, Result};
use crate::registry::ModelRegistry;
use crate::seed::image_seed;
use crate::types::{GenerateParams, GeneratedImage, Pipeline, Progress};

/// The value of every channel of every pixel of a `noop` image.
pub const BLANK: u8 = 255;

/// The pipeline of the `noop` model.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopPipeline;

/// The noop model's ids, for [`ModelRegistry::with_builtins`].
const IDS: &[&str] = &[NOOP];

/// `registry` also serving the built-in `noop` model.
pub fn register(registry: ModelRegistry) -> ModelRegistry {
    registry
        .with_builtins(IDS, load)
        .with_builtin_weights(|_| Ok(Cow::Borrowed(&[])))
}

/// The `noop` pipeline (on any device: it uses none); [`Error::UnknownModel`]
/// for any other id.
pub fn load(model_id: &str, _device: &Device) -> Result<Arc<dyn Pipeline>> {
    if model_id != NOOP {
        return Err(Error::UnknownModel(model_id.to_owned()));
    }
    Ok(Arc::new(NoopPipeline))
}

impl NoopPipeline {
    /// Refuses what a pipeline cannot render at all: zero sides, steps or
    /// images, a sampler no family runs.
    fn check(params: &GenerateParams) -> Result<()> {
        if params.width == 0 || params.height == 0 || params.steps == 0 || params.n == 0 {
            return Err(Error::InvalidParams(format!(
                "noop needs positive width, height, steps and n (got {}x{}, {} steps, n = {})",
                params.width, params.height, params.steps, params.n
            )));
        }
        if !all_samplers().contains(&params.sampler.as_str()) {
            return Err(Error::UnknownSampler {
                sampler: params.sampler.clone(),
                supported: all_samplers().join(", "),
            });
        }
        Ok(())
    }
}

impl Pipeline for NoopPipeline {
    fn model_id(&self) -> &str {
        NOOP
    }

    fn samplers(&self) -> &'static [&'static str] {
        Family::Noop.capabilities().samplers
    }

    fn memory_bytes(&self) -> u64 {
        0
    }

    fn generate(
        &self,
        params: &GenerateParams,
        on_step: &mut dyn FnMut(Progress) -> ControlFlow<()>,
    ) -> Result<Vec<GeneratedImage>> {
        Self::check(params)?;
        for step in 1..=params.steps {
            if on_step(Progress {
                step,
                total: params.steps,
            })
            .is_break()
            {
                return Err(Error::Cancelled);
            }
        }
        let bytes = params.width as usize * params.height as usize * 3;
        Ok((0..params.n)
            .map(|index| GeneratedImage {
                index,
                seed: image_seed(params.seed, u64::from(index)),
                width: params.width,
                height: params.height,
                rgb: vec![BLANK; bytes],
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> GenerateParams {
        GenerateParams {
            seed: u64::MAX,
            steps: 5,
            width: 24,
            height: 16,
            n: 3,
            sampler: "dpmpp_2m_karras".into(),
            ..GenerateParams::default()
        }
    }

    #[test]
    fn renders_n_blank_images_of_the_size_reporting_every_step() {
        let mut steps = Vec::new();
        let images = NoopPipeline
            .generate(&params(), &mut |p| {
                steps.push((p.step, p.total));
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(steps, [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]);
        assert_eq!(images.len(), 3);
        for (k, image) in images.iter().enumerate() {
            assert_eq!(image.index, k as u32);
            assert_eq!(image.seed, image_seed(u64::MAX, k as u64));
            assert_eq!((image.width, image.height), (24, 16));
            assert_eq!(image.rgb.len(), 24 * 16 * 3);
            assert!(image.rgb.iter().all(|&b| b == BLANK));
        }
    }

    #[test]
    fn a_break_cancels_and_bad_params_are_refused() {
        let mut seen = 0;
        let cancelled = NoopPipeline.generate(&params(), &mut |_| {
            seen += 1;
            ControlFlow::Break(())
        });
        assert!(matches!(cancelled, Err(Error::Cancelled)));
        assert_eq!(seen, 1);

        let unknown = GenerateParams {
            sampler: "plms".into(),
            ..params()
        };
        assert!(matches!(
            NoopPipeline.generate(&unknown, &mut |_| ControlFlow::Continue(())),
            Err(Error::UnknownSampler { .. })
        ));
        let empty = GenerateParams { n: 0, ..params() };
        assert!(matches!(
            NoopPipeline.generate(&empty, &mut |_| ControlFlow::Continue(())),
            Err(Error::InvalidParams(_))
        ));
    }

    #[test]
    fn the_registry_serves_it_with_the_tables_capabilities() {
        let registry = register(ModelRegistry::default());
        assert_eq!(registry.available().unwrap(), [NOOP]);
        let pipeline = registry.load(NOOP, &Device::Cpu).unwrap();
        assert_eq!(pipeline.model_id(), NOOP);
        assert_eq!(pipeline.samplers(), all_samplers());
        let caps = registry.capabilities(NOOP).unwrap();
        assert_eq!(caps.family, Family::Noop);
        assert_eq!(caps.max_side, Some(2048));
        assert_eq!(
            registry.weights_sha256(NOOP).unwrap(),
            crate::weights::bytes_sha256(&[])
        );
        assert!(matches!(
            load("tiny-random-dit", &Device::Cpu),
            Err(Error::UnknownModel(_))
        ));
    }
}
