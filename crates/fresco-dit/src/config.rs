//! Model configuration (`config.json`) for DiT pipelines, and its validation.

use std::path::Path;

use fresco_pipeline::{Error, Family, ModelCapabilities, Result};
use serde::{Deserialize, Serialize};

use crate::pipeline::CONFIG_FILE;

/// Architecture and sampling defaults of a pixel-space DiT flow-matching model.
///
/// Serialised as `config.json` next to `model.safetensors`; a trained model ships
/// its own vocabulary in [`TextConfig::vocab`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DitConfig {
    /// Image channels; must be 3 (RGB, the model works directly in pixel space).
    #[serde(default = "default_in_channels")]
    pub in_channels: usize,
    /// Side of the square patches; image width and height must be multiples of it.
    pub patch_size: usize,
    /// Width of the transformer; a multiple of 4 (2-D sin-cos embedding) and of `num_heads`.
    pub hidden_size: usize,
    /// Number of DiT blocks.
    pub depth: usize,
    /// Attention heads in every DiT block.
    pub num_heads: usize,
    /// MLP hidden width as a multiple of `hidden_size`.
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: f64,
    /// Size of the sinusoidal timestep features fed to the timestep MLP (even).
    #[serde(default = "default_freq_embed")]
    pub freq_embed_size: usize,
    /// Timestep shift `s` (SD3 style): `t' = s·t / (1 + (s-1)·t)`; 1.0 = no shift.
    #[serde(default = "default_shift")]
    pub shift: f64,
    /// Largest accepted image side in pixels.
    #[serde(default = "default_max_side")]
    pub max_side: u32,
    /// The caption encoder.
    pub text: TextConfig,
    /// adaLN-Zero initialisation (DiT): when building *fresh* weights, the adaLN
    /// modulation layers and the final projection start at zero, so every block
    /// starts as the identity and the model predicts zero velocity. Meant for
    /// training; the random built-in models keep it off so prompts visibly matter.
    /// Ignored when weights are loaded.
    #[serde(default, skip_serializing_if = "is_false")]
    pub adaln_zero: bool,
    /// What the network's output head predicts (the model always returns a
    /// velocity, so samplers and the training loss are unaffected). Omitted from
    /// `config.json` when it is the default, [`Prediction::Velocity`].
    #[serde(default, skip_serializing_if = "Prediction::is_velocity")]
    pub prediction: Prediction,
    /// Width of the pixel refiner, 0 for none (omitted from `config.json` then).
    /// With a refiner the final projection emits `refiner_channels` features per
    /// pixel instead of the output itself; two 3×3 convolutions over those
    /// features and the noisy input image then produce the output, so neighbouring
    /// pixels of different patches see each other and edges need not follow the
    /// patch grid (U-ViT's closing convolution, widened).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refiner_channels: usize,
    /// Width of the caption layout MLP, 0 for none (omitted from `config.json`
    /// then). With it, every patch token starts with a learned function of its
    /// grid position and the pooled caption, `MLP(pos) + MLP(caption)` through
    /// one GELU, so a word like "square" can mark which patches a square
    /// covers directly, without first passing through the blocks' global
    /// modulation.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub layout_hidden: usize,
    /// A learned embedding for every cell of the largest patch grid
    /// (`max_side / patch_size` cells a side, ViT style), added to the sin-cos
    /// positions; omitted from `config.json` when off. The sin-cos features
    /// change slowly from one cell to the next, so a network that must draw a
    /// sharp outline from the caption alone (at high noise nothing else tells
    /// it where the edges go) learns it slowly; a free vector per cell can
    /// mark "this cell is on the edge" at once. A grid smaller than the largest
    /// uses the table's top-left cells. Under adaLN-Zero the table starts at
    /// zero.
    #[serde(default, skip_serializing_if = "is_false")]
    pub learned_positions: bool,
}

/// Parameterisation of the DiT's output head.
///
/// With `x_t = (1 − t)·x0 + t·ε` the velocity is `v = ε − x0 = (x_t − x0) / t`, so
/// a head that predicts the clean image `x̂0` yields `v̂ = (x_t − x̂0) / max(t, X0_MIN_T)`.
/// Training still regresses `v̂` on `v` (the "v-loss"), i.e. an x0 error weighted by
/// `1 / t²`; sampling uses the same `v̂`. Predicting the clean image makes the
/// high-noise regime (layout, colours) an easy regression on a bounded target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Prediction {
    /// The head outputs the velocity `v = ε − x0` directly.
    #[default]
    Velocity,
    /// The head outputs the clean image `x̂0`; the model returns
    /// `(x_t − x̂0) / max(t, X0_MIN_T)`.
    X0,
    /// EDM-style preconditioning for the flow: the model returns
    /// `v̂ = skip(t)·x_t + scale(t)·F`, where `skip(t)·x_t` is the best linear
    /// estimate of `v` from `x_t` (for data of standard deviation
    /// [`Prediction::SIGMA_DATA`], independent of the noise) and `scale(t)` the
    /// standard deviation of what it leaves, so the head `F` regresses a
    /// unit-variance residual at every `t`. At `t = 1` the noise is copied
    /// exactly (`v̂ = x_t + σ·F`) and the head only has to draw `−x0`, where the
    /// plain velocity head must learn to reproduce its noisy input.
    Preconditioned,
}

impl Prediction {
    /// Smallest flow time used as the divisor of the x0 parameterisation, so the
    /// velocity stays bounded as `t → 0` (below it the head learns the residual).
    pub const X0_MIN_T: f64 = 0.05;

    /// Per-pixel standard deviation assumed for the clean images by
    /// [`Prediction::Preconditioned`] (pixels in `[−1, 1]`; the fresco-shapes
    /// training images measure 0.71 over white, gray and black backgrounds).
    pub const SIGMA_DATA: f64 = 0.7;

    /// `(skip(t), scale(t))` of [`Prediction::Preconditioned`]: with
    /// `x_t = (1 − t)·x0 + t·ε`, `v = ε − x0`, `Var x0 = σ²`, `Var ε = 1`:
    /// `skip = Cov(v, x_t) / Var(x_t)` and `scale² = Var(v) − skip·Cov(v, x_t)`.
    pub fn preconditioning(t: f64) -> (f64, f64) {
        let s2 = Self::SIGMA_DATA * Self::SIGMA_DATA;
        let t = t.clamp(0.0, 1.0);
        let cov = t - (1.0 - t) * s2;
        let var_x = (1.0 - t) * (1.0 - t) * s2 + t * t;
        let skip = cov / var_x;
        let scale = (1.0 + s2 - skip * cov).max(0.0).sqrt();
        (skip, scale)
    }

    /// Whether this is the default velocity head.
    pub fn is_velocity(&self) -> bool {
        *self == Prediction::Velocity
    }
}

/// Configuration of the small word-level caption encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    /// Width of token embeddings and text transformer layers (multiple of `num_heads`).
    pub hidden_size: usize,
    /// Transformer layers over the caption tokens.
    pub num_layers: usize,
    /// Attention heads in the text layers.
    pub num_heads: usize,
    /// Captions are truncated to this many known words.
    pub max_tokens: usize,
    /// Known words, lowercase alphanumeric. Word `vocab[i]` has token id `i + 1`;
    /// id 0 is the learned null token used for empty captions (and thus as the
    /// unconditional input of classifier-free guidance).
    pub vocab: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero(n: &usize) -> bool {
    *n == 0
}
fn default_in_channels() -> usize {
    3
}
fn default_mlp_ratio() -> f64 {
    4.0
}
fn default_freq_embed() -> usize {
    256
}
fn default_shift() -> f64 {
    1.0
}
fn default_max_side() -> u32 {
    512
}

impl DitConfig {
    /// The configuration of `tiny-random-dit`: hidden 64, depth 2, 4 heads,
    /// patch 8, one text layer over the built-in vocabulary.
    pub fn tiny() -> Self {
        Self {
            in_channels: 3,
            patch_size: 8,
            hidden_size: 64,
            depth: 2,
            num_heads: 4,
            mlp_ratio: 4.0,
            freq_embed_size: 64,
            shift: 1.0,
            max_side: 512,
            text: TextConfig {
                hidden_size: 64,
                num_layers: 1,
                num_heads: 4,
                max_tokens: 32,
                vocab: crate::vocab::builtin_vocab(),
            },
            adaln_zero: false,
            prediction: Prediction::Velocity,
            refiner_channels: 0,
            layout_hidden: 0,
            learned_positions: false,
        }
    }

    /// Reads and checks `dir/config.json` (the weights are not touched).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG_FILE);
        if !path.is_file() {
            return Err(Error::MissingModelFile(path));
        }
        let json = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let config: Self = serde_json::from_str(&json)?;
        config.validate()?;
        Ok(config)
    }

    /// What a model of this config, served as `model_id`, accepts: the DiT
    /// family's samplers and knobs, sides that are multiples of the patch
    /// size (pixel space) up to `max_side`, any number of images.
    pub fn capabilities(&self, model_id: &str) -> ModelCapabilities {
        let sides = Family::Dit.capabilities().sides;
        let multiple = sides.multiple(1, self.patch_size);
        ModelCapabilities::of_family(
            model_id,
            Family::Dit,
            u32::try_from(multiple).unwrap_or(u32::MAX),
            sides.max_side_in_config.then_some(self.max_side),
            None,
        )
    }

    /// Checks internal consistency; every loader calls this before building modules.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.in_channels != 3 {
            return bad(format!("in_channels must be 3, got {}", self.in_channels));
        }
        if self.patch_size == 0 || self.depth == 0 || self.num_heads == 0 {
            return bad("patch_size, depth and num_heads must be > 0".into());
        }
        if self.hidden_size == 0 || !self.hidden_size.is_multiple_of(4) {
            return bad(format!(
                "hidden_size must be a positive multiple of 4, got {}",
                self.hidden_size
            ));
        }
        if !self.hidden_size.is_multiple_of(self.num_heads) {
            return bad(format!(
                "hidden_size {} not divisible by num_heads {}",
                self.hidden_size, self.num_heads
            ));
        }
        if !(self.mlp_ratio > 0.0 && self.mlp_ratio.is_finite()) {
            return bad(format!("mlp_ratio must be > 0, got {}", self.mlp_ratio));
        }
        if self.freq_embed_size < 2 || !self.freq_embed_size.is_multiple_of(2) {
            return bad(format!(
                "freq_embed_size must be even and >= 2, got {}",
                self.freq_embed_size
            ));
        }
        if !(self.shift > 0.0 && self.shift.is_finite()) {
            return bad(format!("shift must be > 0, got {}", self.shift));
        }
        if (self.max_side as usize) < self.patch_size {
            return bad(format!("max_side {} below patch size", self.max_side));
        }
        let t = &self.text;
        if t.hidden_size == 0 || t.num_heads == 0 || !t.hidden_size.is_multiple_of(t.num_heads) {
            return bad(format!(
                "text hidden_size {} must be a positive multiple of num_heads {}",
                t.hidden_size, t.num_heads
            ));
        }
        if t.max_tokens == 0 {
            return bad("text max_tokens must be > 0".into());
        }
        if let Some(w) = t
            .vocab
            .iter()
            .find(|w| w.is_empty() || w.chars().any(|c| !c.is_alphanumeric() || c.is_uppercase()))
        {
            return bad(format!(
                "vocab word `{w}` is not a lowercase alphanumeric word"
            ));
        }
        Ok(())
    }

    /// Hidden width of the DiT MLPs.
    pub(crate) fn mlp_hidden(&self) -> usize {
        ((self.hidden_size as f64) * self.mlp_ratio)
            .round()
            .max(1.0) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_is_valid_and_json_round_trips() {
        let c = DitConfig::tiny();
        c.validate().unwrap();
        let json = serde_json::to_string(&c).unwrap();
        let back: DitConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        assert!(
            !json.contains("adaln_zero"),
            "default must not change config.json"
        );
        let mut z = c.clone();
        z.adaln_zero = true;
        let back: DitConfig = serde_json::from_str(&serde_json::to_string(&z).unwrap()).unwrap();
        assert!(back.adaln_zero);
        assert!(
            !json.contains("prediction"),
            "default must not change config.json"
        );
        z.prediction = Prediction::X0;
        let json = serde_json::to_string(&z).unwrap();
        assert!(json.contains("\"prediction\":\"x0\""), "{json}");
        let back: DitConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back.prediction, Prediction::X0);
    }

    #[test]
    fn inconsistent_configs_are_rejected() {
        let mut c = DitConfig::tiny();
        c.num_heads = 3;
        assert!(matches!(c.validate(), Err(Error::Config(_))));
        let mut c = DitConfig::tiny();
        c.text.vocab.push("Hello".into());
        assert!(matches!(c.validate(), Err(Error::Config(_))));
        let mut c = DitConfig::tiny();
        c.in_channels = 4;
        assert!(matches!(c.validate(), Err(Error::Config(_))));
    }
}
