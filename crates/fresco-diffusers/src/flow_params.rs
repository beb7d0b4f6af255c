//! What one call to the SD3 or FLUX pipeline renders ([`FlowParams`]), and the checks
//! both pipelines apply to it (initial latents included).

use candle_core::Tensor;

use crate::error::{Result, invalid};
use crate::pipeline::{MAX_BATCH, Prompt};

/// Parameters of an SD3 ([`crate::sd3::Sd3Pipeline`]) or FLUX
/// ([`crate::flux::FluxPipeline`]) run.
#[derive(Debug, Clone)]
pub struct FlowParams {
    /// What to draw: text for every tokenizer, or token ids for the CLIP encoders.
    pub prompt: Prompt,
    /// SD3 only: what the second CLIP encoder (CLIP-G, `text_encoder_2/`) sees; `None`
    /// means `prompt` (diffusers' `prompt_2`). Ignored by FLUX, which has one CLIP.
    pub prompt_2: Option<Prompt>,
    /// What the T5 encoder sees; `None` means `prompt` (text, or ids valid for T5).
    pub t5_prompt: Option<Prompt>,
    /// SD3 only: what to steer away from, for every encoder (T5 included, as diffusers'
    /// `negative_prompt_3` defaults to it); `None` means the empty prompt.
    pub negative: Option<Prompt>,
    /// SD3: classifier-free guidance scale (on above 1, [`fresco_pipeline::guidance_enabled`]). FLUX-dev: the distilled guidance
    /// value fed to the guidance embedding (no second pass); ignored by FLUX-schnell.
    pub guidance_scale: f64,
    /// Sampler steps.
    pub steps: usize,
    /// T5 sequence length; `None` means the pipeline's default (SD3 256, FLUX 512, as in
    /// diffusers).
    pub max_sequence_length: Option<usize>,
    /// The run's seed: image `k` has the image seed `seed + first_index + k`
    /// ([`fresco_pipeline::image_seed`]) and draws all its noise from it.
    pub seed: u64,
    /// Image width in pixels; `None` means the model's native size.
    pub width: Option<usize>,
    /// Image height in pixels; `None` means the model's native size.
    pub height: Option<usize>,
    /// How many images.
    pub n: usize,
    /// Index of the first image: image `first_index + k` draws its noise from the
    /// image seed `seed + first_index + k`, so any image of a run can be rendered
    /// again alone (with this index, or with its image seed and index 0).
    pub first_index: u64,
    /// A fixed time shift replacing the folder scheduler's `shift` and its
    /// dynamic (resolution-dependent) shifting; `None` keeps the folder's.
    pub flow_shift: Option<f64>,
    /// Unit-variance initial latents `[n, channels, height / f, width / f]` to start
    /// from instead of seeded noise (diffusers' `latents`; FLUX packs them 2x2 as it
    /// packs its own noise).
    pub init_latents: Option<Tensor>,
}

impl FlowParams {
    /// Defaults for `prompt`: guidance 7.0 (SD3's default; set 3.5 for FLUX-dev), 28 steps,
    /// seed 0, one image at the model's native size.
    pub fn new(prompt: Prompt) -> Self {
        Self {
            prompt,
            prompt_2: None,
            t5_prompt: None,
            negative: None,
            guidance_scale: 7.0,
            steps: 28,
            max_sequence_length: None,
            seed: 0,
            width: None,
            height: None,
            n: 1,
            first_index: 0,
            flow_shift: None,
            init_latents: None,
        }
    }

    /// The T5 prompt.
    pub(crate) fn t5(&self) -> &Prompt {
        self.t5_prompt.as_ref().unwrap_or(&self.prompt)
    }

    /// The second CLIP encoder's prompt.
    pub(crate) fn clip_2(&self) -> &Prompt {
        self.prompt_2.as_ref().unwrap_or(&self.prompt)
    }

    /// Image `k`'s starting latents `[1, c, h, w]`: the given ones when `init_latents` is
    /// set (its shape checked against `[n, c, h, w]`), else `None` (draw seeded noise).
    pub(crate) fn init_latents_of(
        &self,
        k: usize,
        shape: (usize, usize, usize),
    ) -> Result<Option<Tensor>> {
        let Some(given) = &self.init_latents else {
            return Ok(None);
        };
        let want = [self.n, shape.0, shape.1, shape.2];
        if given.dims() != want {
            return Err(invalid(
                "init_latents",
                format!("shape {:?}, expected {want:?}", given.dims()),
            ));
        }
        Ok(Some(given.narrow(0, k, 1)?))
    }

    /// Checks `n`, `steps` and the guidance value, and returns `(width, height)`, which
    /// must be positive multiples of `multiple`.
    pub(crate) fn check(&self, native: (usize, usize), multiple: usize) -> Result<(usize, usize)> {
        if self.n == 0 || self.n > MAX_BATCH {
            return Err(invalid("n", format!("must be between 1 and {MAX_BATCH}")));
        }
        if self.steps == 0 {
            return Err(invalid("steps", "must be at least 1"));
        }
        if !self.guidance_scale.is_finite() {
            return Err(invalid("guidance_scale", "must be a finite number"));
        }
        if self.flow_shift.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
            return Err(invalid("flow_shift", "must be a positive finite number"));
        }
        if self.max_sequence_length == Some(0) {
            return Err(invalid("max_sequence_length", "must be at least 1"));
        }
        let width = self.width.unwrap_or(native.0);
        let height = self.height.unwrap_or(native.1);
        for (field, v) in [("width", width), ("height", height)] {
            if v == 0 || !v.is_multiple_of(multiple) {
                return Err(invalid(
                    field,
                    format!("{v} is not a positive multiple of {multiple}"),
                ));
            }
        }
        Ok((width, height))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn init_latents_are_taken_per_image_and_shape_checked() -> Result<()> {
        let mut p = FlowParams::new(Prompt::Tokens(vec![1]));
        assert!(p.init_latents_of(0, (4, 2, 2))?.is_none());
        p.n = 2;
        p.init_latents = Some(Tensor::arange(0f32, 16.0, &Device::Cpu)?.reshape((2, 2, 2, 2))?);
        let second = p
            .init_latents_of(1, (2, 2, 2))?
            .ok_or_else(|| invalid("init_latents", "missing"))?;
        assert_eq!(second.dims(), &[1, 2, 2, 2]);
        assert_eq!(
            second
                .flatten_all()?
                .to_dtype(DType::U32)?
                .to_vec1::<u32>()?,
            (8..16).collect::<Vec<u32>>()
        );
        let err = p.init_latents_of(0, (4, 2, 2)).map(|_| ());
        assert!(
            matches!(&err, Err(crate::Error::InvalidParams { field, .. }) if *field == "init_latents"),
            "{err:?}"
        );
        Ok(())
    }
}
