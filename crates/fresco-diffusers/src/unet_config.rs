//! The UNet's `config.json` (diffusers' `UNet2DConditionModel`): parsing, the checks that
//! refuse what fresco's UNet cannot run (naming the field), and the mapping onto
//! candle-transformers' [`UNet2DConditionModelConfig`]. Per-block values diffusers
//! accepts as a number or a list (`attention_head_dim`, `num_attention_heads`,
//! `transformer_layers_per_block`) are resolved to one value per block here.

use std::path::{Path, PathBuf};

use candle_transformers::models::stable_diffusion::unet_2d::{
    BlockConfig, UNet2DConditionModelConfig,
};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::files::read_json;

/// A value diffusers accepts either once for every block or as one per block.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PerBlock<T> {
    /// The same value for every block.
    One(T),
    /// One value per down block.
    Many(Vec<T>),
}

impl<T: Copy> PerBlock<T> {
    fn resolve(&self, n: usize) -> Option<Vec<T>> {
        match self {
            Self::One(v) => Some(vec![*v; n]),
            Self::Many(v) if v.len() == n => Some(v.clone()),
            Self::Many(_) => None,
        }
    }
}

/// The fields of diffusers' `UNet2DConditionModel` config that fresco reads or checks.
#[derive(Debug, Clone, Deserialize)]
pub struct UnetConfig {
    /// Latent channels in.
    #[serde(default = "four")]
    pub in_channels: usize,
    /// Latent channels out.
    #[serde(default = "four")]
    pub out_channels: usize,
    /// Latent side length the model was trained at.
    #[serde(default)]
    pub sample_size: Option<usize>,
    /// Scale the input to `[-1, 1]` first.
    #[serde(default)]
    pub center_input_sample: bool,
    /// Sinusoidal timestep embedding order.
    #[serde(default = "yes")]
    pub flip_sin_to_cos: bool,
    /// Sinusoidal timestep embedding frequency shift.
    #[serde(default)]
    pub freq_shift: f64,
    /// `CrossAttnDownBlock2D` / `DownBlock2D` per level.
    pub down_block_types: Vec<String>,
    /// `CrossAttnUpBlock2D` / `UpBlock2D` per level (the down blocks mirrored).
    pub up_block_types: Vec<String>,
    /// `UNetMidBlock2DCrossAttn`.
    #[serde(default)]
    pub mid_block_type: Option<String>,
    /// Channels per level.
    pub block_out_channels: Vec<usize>,
    /// Resnets per down block.
    #[serde(default = "two_per_block")]
    pub layers_per_block: PerBlock<usize>,
    /// Padding of the downsampling convolutions.
    #[serde(default = "one")]
    pub downsample_padding: usize,
    /// Output scale of the mid block.
    #[serde(default = "one_f")]
    pub mid_block_scale_factor: f64,
    /// `silu`.
    #[serde(default = "silu")]
    pub act_fn: String,
    /// Group norm groups.
    #[serde(default = "thirty_two")]
    pub norm_num_groups: usize,
    /// Group norm epsilon.
    #[serde(default = "eps")]
    pub norm_eps: f64,
    /// Width of the text states.
    pub cross_attention_dim: PerBlock<usize>,
    /// Transformer blocks per attention layer.
    #[serde(default = "one_per_block")]
    pub transformer_layers_per_block: PerBlock<usize>,
    /// Head count (diffusers' historical name when `num_attention_heads` is null).
    #[serde(default = "eight_per_block")]
    pub attention_head_dim: PerBlock<usize>,
    /// Head count, when given.
    #[serde(default)]
    pub num_attention_heads: Option<PerBlock<usize>>,
    /// Linear instead of 1×1-conv projections around the transformers (SD 2.x, SDXL).
    #[serde(default)]
    pub use_linear_projection: bool,
    /// SDXL: `text_time`.
    #[serde(default)]
    pub addition_embed_type: Option<String>,
    /// SDXL: width of each time-id embedding.
    #[serde(default)]
    pub addition_time_embed_dim: Option<usize>,
    /// SDXL: width of the pooled text plus time ids.
    #[serde(default)]
    pub projection_class_embeddings_input_dim: Option<usize>,
    /// Must be null.
    #[serde(default)]
    pub class_embed_type: Option<String>,
    /// Must be null.
    #[serde(default)]
    pub num_class_embeds: Option<usize>,
    /// Must be `positional`.
    #[serde(default = "positional")]
    pub time_embedding_type: String,
    /// Must be null.
    #[serde(default)]
    pub time_embedding_dim: Option<usize>,
    /// Must be null.
    #[serde(default)]
    pub time_embedding_act_fn: Option<String>,
    /// Must be null.
    #[serde(default)]
    pub timestep_post_act: Option<String>,
    /// Must be null.
    #[serde(default)]
    pub time_cond_proj_dim: Option<usize>,
    /// Must be null.
    #[serde(default)]
    pub encoder_hid_dim: Option<usize>,
    /// Must be `default`.
    #[serde(default = "default_str")]
    pub resnet_time_scale_shift: String,
    /// Must be 1.
    #[serde(default = "one_f")]
    pub resnet_out_scale_factor: f64,
    /// Must be false.
    #[serde(default)]
    pub resnet_skip_time_act: bool,
    /// Must be false.
    #[serde(default)]
    pub only_cross_attention: PerBlockBool,
    /// Must be false.
    #[serde(default)]
    pub dual_cross_attention: bool,
    /// Must be `default`.
    #[serde(default = "default_str")]
    pub attention_type: String,
    /// Must be null.
    #[serde(default)]
    pub cross_attention_norm: Option<String>,
    /// Must be 3.
    #[serde(default = "three")]
    pub conv_in_kernel: usize,
    /// Must be 3.
    #[serde(default = "three")]
    pub conv_out_kernel: usize,
    /// Must be null (the reverse of `transformer_layers_per_block` is used).
    #[serde(default)]
    pub reverse_transformer_layers_per_block: Option<serde_json::Value>,
    /// Must be null or false.
    #[serde(default)]
    pub mid_block_only_cross_attention: Option<bool>,
}

/// `only_cross_attention`: a flag, once or per block.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PerBlockBool {
    /// The same flag for every block.
    One(bool),
    /// One flag per block.
    Many(Vec<bool>),
}

impl Default for PerBlockBool {
    fn default() -> Self {
        Self::One(false)
    }
}

fn four() -> usize {
    4
}
fn one() -> usize {
    1
}
fn three() -> usize {
    3
}
fn thirty_two() -> usize {
    32
}
fn one_f() -> f64 {
    1.0
}
fn eps() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}
fn silu() -> String {
    "silu".into()
}
fn positional() -> String {
    "positional".into()
}
fn default_str() -> String {
    "default".into()
}
fn two_per_block() -> PerBlock<usize> {
    PerBlock::One(2)
}
fn one_per_block() -> PerBlock<usize> {
    PerBlock::One(1)
}
fn eight_per_block() -> PerBlock<usize> {
    PerBlock::One(8)
}

/// One level of the UNet, resolved from the per-block config fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnetLevel {
    /// Channels of the level.
    pub channels: usize,
    /// Whether the level has cross-attention transformers.
    pub cross_attention: bool,
    /// Attention heads of its transformers.
    pub heads: usize,
    /// Transformer blocks per attention layer.
    pub transformer_layers: usize,
}

/// A UNet config checked against what fresco runs, with per-block values resolved.
#[derive(Debug, Clone)]
pub struct ResolvedUnet {
    /// The parsed file.
    pub raw: UnetConfig,
    /// The levels, top (full resolution) first.
    pub levels: Vec<UnetLevel>,
    /// Resnets per down block.
    pub layers_per_block: usize,
    /// Width of the text states.
    pub cross_attention_dim: usize,
    /// Whether the model adds SDXL's `text_time` embedding.
    pub text_time: bool,
}

impl UnetConfig {
    /// Reads `unet/config.json` and checks it.
    pub fn from_file(path: &Path) -> Result<ResolvedUnet> {
        let raw: UnetConfig = read_json(path)?;
        raw.resolve(path)
    }

    fn resolve(self, path: &Path) -> Result<ResolvedUnet> {
        let path = path.to_path_buf();
        let err = |field: &str, detail: String| unsupported(&path, field, detail);
        let n = self.block_out_channels.len();
        if n == 0 {
            return Err(err("block_out_channels", "is empty".into()));
        }
        if self.down_block_types.len() != n || self.up_block_types.len() != n {
            return Err(err(
                "down_block_types",
                format!(
                    "{} down and {} up blocks for {n} levels of block_out_channels",
                    self.down_block_types.len(),
                    self.up_block_types.len()
                ),
            ));
        }
        let mut cross = Vec::with_capacity(n);
        for (i, kind) in self.down_block_types.iter().enumerate() {
            let has_attn = match kind.as_str() {
                "CrossAttnDownBlock2D" => true,
                "DownBlock2D" => false,
                other => return Err(err("down_block_types", format!("`{other}`"))),
            };
            let up = &self.up_block_types[n - 1 - i];
            let expected_up = if has_attn {
                "CrossAttnUpBlock2D"
            } else {
                "UpBlock2D"
            };
            if up != expected_up {
                return Err(err(
                    "up_block_types",
                    format!("`{up}` at level {i} must mirror `{kind}` as `{expected_up}`"),
                ));
            }
            cross.push(has_attn);
        }
        let per_block = |field: &str, v: &PerBlock<usize>| {
            v.resolve(n)
                .ok_or_else(|| err(field, format!("must be a number or a list of {n}")))
        };
        let heads = match &self.num_attention_heads {
            Some(h) => per_block("num_attention_heads", h)?,
            None => per_block("attention_head_dim", &self.attention_head_dim)?,
        };
        let transformer_layers = per_block(
            "transformer_layers_per_block",
            &self.transformer_layers_per_block,
        )?;
        let layers_per_block = match self.layers_per_block {
            PerBlock::One(v) => v,
            PerBlock::Many(_) => {
                return Err(err("layers_per_block", "must be a single number".into()));
            }
        };
        let cross_attention_dim = match self.cross_attention_dim {
            PerBlock::One(v) => v,
            PerBlock::Many(_) => {
                return Err(err("cross_attention_dim", "must be a single number".into()));
            }
        };
        let mut levels = Vec::with_capacity(n);
        for i in 0..n {
            let channels = self.block_out_channels[i];
            if heads[i] == 0 || !channels.is_multiple_of(heads[i]) {
                return Err(err(
                    "attention_head_dim",
                    format!("{} heads do not divide {channels} channels", heads[i]),
                ));
            }
            if !channels.is_multiple_of(self.norm_num_groups) {
                return Err(err(
                    "norm_num_groups",
                    format!("{} does not divide {channels}", self.norm_num_groups),
                ));
            }
            levels.push(UnetLevel {
                channels,
                cross_attention: cross[i],
                heads: heads[i],
                transformer_layers: transformer_layers[i],
            });
        }
        let text_time = match self.addition_embed_type.as_deref() {
            None => false,
            Some("text_time") => {
                if self.addition_time_embed_dim.is_none()
                    || self.projection_class_embeddings_input_dim.is_none()
                {
                    return Err(err(
                        "addition_embed_type",
                        "`text_time` needs addition_time_embed_dim and \
                         projection_class_embeddings_input_dim"
                            .into(),
                    ));
                }
                true
            }
            Some(other) => return Err(err("addition_embed_type", format!("`{other}`"))),
        };
        self.check_fixed(&path)?;
        Ok(ResolvedUnet {
            raw: self,
            levels,
            layers_per_block,
            cross_attention_dim,
            text_time,
        })
    }

    /// Options that have one supported value.
    fn check_fixed(&self, path: &Path) -> Result<()> {
        let err = |field: &str, detail: String| unsupported(path, field, detail);
        let must = |ok: bool, field: &str, want: &str| {
            if ok {
                Ok(())
            } else {
                Err(err(field, format!("must be {want}")))
            }
        };
        must(self.act_fn == "silu", "act_fn", "silu")?;
        must(
            matches!(
                self.mid_block_type.as_deref(),
                None | Some("UNetMidBlock2DCrossAttn")
            ),
            "mid_block_type",
            "UNetMidBlock2DCrossAttn",
        )?;
        must(self.class_embed_type.is_none(), "class_embed_type", "null")?;
        must(self.num_class_embeds.is_none(), "num_class_embeds", "null")?;
        must(
            self.time_embedding_type == "positional",
            "time_embedding_type",
            "positional",
        )?;
        must(
            self.time_embedding_dim.is_none(),
            "time_embedding_dim",
            "null",
        )?;
        must(
            self.time_embedding_act_fn.is_none(),
            "time_embedding_act_fn",
            "null",
        )?;
        must(
            self.timestep_post_act.is_none(),
            "timestep_post_act",
            "null",
        )?;
        must(
            self.time_cond_proj_dim.is_none(),
            "time_cond_proj_dim",
            "null",
        )?;
        must(self.encoder_hid_dim.is_none(), "encoder_hid_dim", "null")?;
        must(
            self.resnet_time_scale_shift == "default",
            "resnet_time_scale_shift",
            "default",
        )?;
        must(
            self.resnet_out_scale_factor == 1.0,
            "resnet_out_scale_factor",
            "1.0",
        )?;
        must(!self.resnet_skip_time_act, "resnet_skip_time_act", "false")?;
        let only_cross = match &self.only_cross_attention {
            PerBlockBool::One(v) => *v,
            PerBlockBool::Many(v) => v.iter().any(|b| *b),
        };
        must(!only_cross, "only_cross_attention", "false")?;
        must(!self.dual_cross_attention, "dual_cross_attention", "false")?;
        must(
            self.attention_type == "default",
            "attention_type",
            "default",
        )?;
        must(
            self.cross_attention_norm.is_none(),
            "cross_attention_norm",
            "null",
        )?;
        must(self.conv_in_kernel == 3, "conv_in_kernel", "3")?;
        must(self.conv_out_kernel == 3, "conv_out_kernel", "3")?;
        must(
            self.reverse_transformer_layers_per_block
                .as_ref()
                .is_none_or(|v| v.is_null()),
            "reverse_transformer_layers_per_block",
            "null",
        )?;
        must(
            !self.mid_block_only_cross_attention.unwrap_or(false),
            "mid_block_only_cross_attention",
            "null or false",
        )?;
        Ok(())
    }
}

impl ResolvedUnet {
    /// candle-transformers' config for this UNet. Heads map onto candle's
    /// `attention_head_dim` (which candle, like diffusers, treats as the head count).
    pub fn candle_config(&self) -> UNet2DConditionModelConfig {
        UNet2DConditionModelConfig {
            center_input_sample: self.raw.center_input_sample,
            flip_sin_to_cos: self.raw.flip_sin_to_cos,
            freq_shift: self.raw.freq_shift,
            blocks: self
                .levels
                .iter()
                .map(|l| BlockConfig {
                    out_channels: l.channels,
                    use_cross_attn: l.cross_attention.then_some(l.transformer_layers),
                    attention_head_dim: l.heads,
                })
                .collect(),
            layers_per_block: self.layers_per_block,
            downsample_padding: self.raw.downsample_padding,
            mid_block_scale_factor: self.raw.mid_block_scale_factor,
            norm_num_groups: self.raw.norm_num_groups,
            norm_eps: self.raw.norm_eps,
            cross_attention_dim: self.cross_attention_dim,
            sliced_attention_size: None,
            use_linear_projection: self.raw.use_linear_projection,
        }
    }

    /// How many times the UNet halves the latent size.
    pub fn downsamplings(&self) -> usize {
        self.levels.len() - 1
    }
}

fn unsupported(path: &Path, field: &str, detail: String) -> Error {
    Error::Unsupported {
        path: PathBuf::from(path),
        field: field.to_string(),
        detail,
    }
}
