//! fresco's CLIP text encoder (transformers' `CLIPTextModel` and
//! `CLIPTextModelWithProjection`), configured from `text_encoder/config.json`: vocabulary
//! and widths, depth, heads, `hidden_act` (`quick_gelu`, exact `gelu`, tanh `gelu_new`),
//! `layer_norm_eps` and the end-of-text id that picks the pooled token. It returns every
//! layer's hidden states, so SD 1.x/2.x (last state) and SDXL (penultimate state plus the
//! projected pooled vector) read what they need.

use std::path::Path;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, Module, VarBuilder};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::files::read_json;
use crate::weights::Weights;

/// The fields of transformers' `CLIPTextConfig` the encoder reads.
#[derive(Debug, Clone, Deserialize)]
pub struct ClipTextConfig {
    /// Number of token ids.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Sequence length (77 for every Stable Diffusion encoder).
    pub max_position_embeddings: usize,
    /// `quick_gelu`, `gelu` (exact) or `gelu_new` / `gelu_pytorch_tanh` (tanh approximation).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Epsilon of every layer norm.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Begin-of-text id.
    #[serde(default = "default_bos")]
    pub bos_token_id: u32,
    /// End-of-text id (its first position gives the pooled output).
    #[serde(default = "default_eos")]
    pub eos_token_id: u32,
    /// Padding id used for token-id prompts shorter than the sequence.
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// Width of the text projection (`CLIPTextModelWithProjection`).
    #[serde(default)]
    pub projection_dim: Option<usize>,
}

fn default_act() -> String {
    "quick_gelu".into()
}
fn default_eps() -> f64 {
    1e-5
}
fn default_bos() -> u32 {
    49406
}
fn default_eos() -> u32 {
    49407
}

impl ClipTextConfig {
    /// Reads and checks `config.json` of a text encoder folder.
    pub fn from_file(path: &Path) -> Result<Self> {
        let config: Self = read_json(path)?;
        let unsupported = |field: &str, detail: String| Error::Unsupported {
            path: path.to_path_buf(),
            field: field.to_string(),
            detail,
        };
        Activation::parse(&config.hidden_act).ok_or_else(|| {
            unsupported(
                "hidden_act",
                format!(
                    "`{}` (supported: quick_gelu, gelu, gelu_new, gelu_pytorch_tanh)",
                    config.hidden_act
                ),
            )
        })?;
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(unsupported(
                "num_attention_heads",
                format!(
                    "{} does not divide hidden_size {}",
                    config.num_attention_heads, config.hidden_size
                ),
            ));
        }
        Ok(config)
    }

    /// The id that pads token-id prompts (the pad id, else end-of-text).
    pub fn pad_id(&self) -> u32 {
        self.pad_token_id.unwrap_or(self.eos_token_id)
    }
}

#[derive(Debug, Clone, Copy)]
enum Activation {
    QuickGelu,
    GeluErf,
    GeluTanh,
}

impl Activation {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "quick_gelu" => Some(Self::QuickGelu),
            "gelu" => Some(Self::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Self::GeluTanh),
            _ => None,
        }
    }

    fn forward(self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::QuickGelu => xs * candle_nn::ops::sigmoid(&(xs * 1.702f64)?)?,
            Self::GeluErf => xs.gelu_erf(),
            Self::GeluTanh => xs.gelu(),
        }
    }
}

#[derive(Debug)]
struct SelfAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
    head_dim: usize,
}

impl SelfAttention {
    fn new(vb: VarBuilder, c: &ClipTextConfig) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        Ok(Self {
            q: candle_nn::linear(h, h, vb.pp("q_proj"))?,
            k: candle_nn::linear(h, h, vb.pp("k_proj"))?,
            v: candle_nn::linear(h, h, vb.pp("v_proj"))?,
            out: candle_nn::linear(h, h, vb.pp("out_proj"))?,
            heads: c.num_attention_heads,
            head_dim: h / c.num_attention_heads,
        })
    }

    fn split_heads(&self, xs: Tensor, b: usize, t: usize) -> candle_core::Result<Tensor> {
        xs.reshape((b, t, self.heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    fn forward(&self, xs: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, c) = xs.dims3()?;
        let scale = (self.head_dim as f64).powf(-0.5);
        let q = self.split_heads((self.q.forward(xs)? * scale)?, b, t)?;
        let k = self.split_heads(self.k.forward(xs)?, b, t)?;
        let v = self.split_heads(self.v.forward(xs)?, b, t)?;
        let scores = q.matmul(&k.t()?)?.broadcast_add(mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, c))?;
        self.out.forward(&out)
    }
}

#[derive(Debug)]
struct EncoderLayer {
    attn: SelfAttention,
    norm1: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    norm2: LayerNorm,
    act: Activation,
}

impl EncoderLayer {
    fn new(vb: VarBuilder, c: &ClipTextConfig, act: Activation) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        Ok(Self {
            attn: SelfAttention::new(vb.pp("self_attn"), c)?,
            norm1: candle_nn::layer_norm(h, c.layer_norm_eps, vb.pp("layer_norm1"))?,
            fc1: candle_nn::linear(h, c.intermediate_size, vb.pp("mlp.fc1"))?,
            fc2: candle_nn::linear(c.intermediate_size, h, vb.pp("mlp.fc2"))?,
            norm2: candle_nn::layer_norm(h, c.layer_norm_eps, vb.pp("layer_norm2"))?,
            act,
        })
    }

    fn forward(&self, xs: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let xs = (xs + self.attn.forward(&self.norm1.forward(xs)?, mask)?)?;
        let h = self
            .act
            .forward(&self.fc1.forward(&self.norm2.forward(&xs)?)?)?;
        xs + self.fc2.forward(&h)?
    }
}

/// What the encoder computed for a batch of token ids.
#[derive(Debug, Clone)]
pub struct ClipOutput {
    /// The final layer-normed states, `[batch, seq, hidden]` (transformers' `last_hidden_state`).
    pub last_hidden_state: Tensor,
    /// The embeddings followed by each layer's output, none normed (transformers'
    /// `hidden_states`, so `hidden_states[len - 2]` is SDXL's penultimate state).
    pub hidden_states: Vec<Tensor>,
    /// `last_hidden_state` at each sequence's first end-of-text token, `[batch, hidden]`.
    pub pooled: Tensor,
    /// `pooled` through the text projection, when the encoder has one.
    pub text_embeds: Option<Tensor>,
}

/// A CLIP text encoder with its weights.
#[derive(Debug)]
pub struct ClipTextModel {
    config: ClipTextConfig,
    token_embedding: Embedding,
    position_embedding: Embedding,
    layers: Vec<EncoderLayer>,
    final_layer_norm: LayerNorm,
    text_projection: Option<Linear>,
}

impl ClipTextModel {
    /// Loads `config.json` and `model.safetensors` from a text encoder folder.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let config = ClipTextConfig::from_file(&dir.join("config.json"))?;
        let weights = Weights::open(dir, "model", dtype, device)?;
        Self::from_weights(config, &weights)
    }

    pub(crate) fn from_weights(config: ClipTextConfig, weights: &Weights) -> Result<Self> {
        let act = Activation::parse(&config.hidden_act).ok_or_else(|| Error::Unsupported {
            path: weights.path().to_path_buf(),
            field: "hidden_act".into(),
            detail: config.hidden_act.clone(),
        })?;
        weights.build(|root| {
            // transformers writes `text_model.` in front of the encoder's names (older
            // files, and every Stable Diffusion release); newer files may omit it.
            let vb = if root.contains_tensor("text_model.embeddings.token_embedding.weight") {
                root.pp("text_model")
            } else {
                root.clone()
            };
            let h = config.hidden_size;
            let emb = vb.pp("embeddings");
            let token_embedding =
                candle_nn::embedding(config.vocab_size, h, emb.pp("token_embedding"))?;
            let position_embedding = candle_nn::embedding(
                config.max_position_embeddings,
                h,
                emb.pp("position_embedding"),
            )?;
            let layers = (0..config.num_hidden_layers)
                .map(|i| EncoderLayer::new(vb.pp(format!("encoder.layers.{i}")), &config, act))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let final_layer_norm =
                candle_nn::layer_norm(h, config.layer_norm_eps, vb.pp("final_layer_norm"))?;
            let text_projection = match config.projection_dim {
                Some(p) if root.contains_tensor("text_projection.weight") => {
                    Some(candle_nn::linear_no_bias(h, p, root.pp("text_projection"))?)
                }
                _ => None,
            };
            Ok(Self {
                config: config.clone(),
                token_embedding,
                position_embedding,
                layers,
                final_layer_norm,
                text_projection,
            })
        })
    }

    /// The config the encoder was built from.
    pub fn config(&self) -> &ClipTextConfig {
        &self.config
    }

    /// Encodes `input_ids` (`[batch, seq]`, `u32`, `seq` at most the maximum positions).
    pub fn forward(&self, input_ids: &Tensor) -> Result<ClipOutput> {
        let (b, t) = input_ids.dims2()?;
        if t > self.config.max_position_embeddings {
            return Err(crate::error::invalid(
                "input_ids",
                format!(
                    "{t} tokens, more than the encoder's {} positions",
                    self.config.max_position_embeddings
                ),
            ));
        }
        let device = input_ids.device();
        let positions = Tensor::arange(0u32, t as u32, device)?;
        let xs = self
            .token_embedding
            .forward(input_ids)?
            .broadcast_add(&self.position_embedding.forward(&positions)?)?;
        let dtype = xs.dtype();
        let mask = causal_mask(t, device)?.to_dtype(dtype)?;
        let mut hidden_states = vec![xs.clone()];
        let mut xs = xs;
        for layer in &self.layers {
            xs = layer.forward(&xs, &mask)?;
            hidden_states.push(xs.clone());
        }
        let last_hidden_state = self.final_layer_norm.forward(&xs)?;
        let ids = input_ids.to_vec2::<u32>()?;
        let mut pooled = Vec::with_capacity(b);
        for (row, seq) in ids.iter().enumerate() {
            // The first end-of-text token (transformers' rule for eos ids other than 2;
            // for 2 it takes the largest id, which is the end token of CLIP's vocabulary).
            let pos = if self.config.eos_token_id == 2 {
                argmax(seq)
            } else {
                seq.iter()
                    .position(|&id| id == self.config.eos_token_id)
                    .unwrap_or(0)
            };
            pooled.push(last_hidden_state.i((row, pos))?);
        }
        let pooled = Tensor::stack(&pooled, 0)?;
        let text_embeds = match &self.text_projection {
            Some(p) => Some(p.forward(&pooled)?),
            None => None,
        };
        Ok(ClipOutput {
            last_hidden_state,
            hidden_states,
            pooled,
            text_embeds,
        })
    }
}

fn argmax(seq: &[u32]) -> usize {
    let mut best = 0;
    for (i, &v) in seq.iter().enumerate() {
        if v > seq[best] {
            best = i;
        }
    }
    best
}

/// `[t, t]` with 0 on and below the diagonal and -inf above it.
fn causal_mask(t: usize, device: &Device) -> candle_core::Result<Tensor> {
    let values: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(values, (t, t), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_end_token_wins_argmax_for_eos_two() {
        assert_eq!(argmax(&[49406, 5, 49407, 49407]), 2);
    }

    #[test]
    fn mask_is_causal() -> candle_core::Result<()> {
        let m = causal_mask(3, &Device::Cpu)?.to_vec2::<f32>()?;
        assert_eq!(m[0][0], 0.0);
        assert!(m[0][1].is_infinite());
        assert_eq!(m[2][1], 0.0);
        Ok(())
    }
}
