//! The T5 text encoder of SD3 (`text_encoder_3/`) and FLUX (`text_encoder_2/`):
//! candle-transformers' `T5EncoderModel`, configured from transformers' `config.json`
//! ([`T5Config`], mapped onto candle's config with transformers' defaults for absent
//! fields), and its tokenizer (`tokenizer.json`: the prompt's pieces, truncated, then `</s>`
//! and padding to the run's sequence length, as diffusers pipelines call it).
//!
//! candle's T5 weight names are transformers' (`shared.weight`, `encoder.block.{i}...`),
//! so a diffusers folder loads without renaming. Its encoder computes in the weights'
//! dtype (layer norms in f32), so f32 runs on CPU work as they are.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::t5;
use serde::Deserialize;
use tokenizers::Tokenizer;

use crate::error::{Error, Result, invalid};
use crate::files::read_json;
use crate::pipeline::Prompt;
use crate::weights::Weights;

/// The fields of transformers' `T5Config` the encoder reads.
#[derive(Debug, Clone, Deserialize)]
pub struct T5Config {
    /// Number of token ids.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub d_model: usize,
    /// Width of one attention head.
    pub d_kv: usize,
    /// Width of the feed-forward layer.
    pub d_ff: usize,
    /// Encoder layers.
    pub num_layers: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Relative-position buckets.
    #[serde(default = "d32")]
    pub relative_attention_num_buckets: usize,
    /// Largest relative distance with its own buckets.
    #[serde(default = "d128")]
    pub relative_attention_max_distance: usize,
    /// Epsilon of the RMS layer norms.
    #[serde(default = "eps")]
    pub layer_norm_epsilon: f64,
    /// `relu`, `gelu_new`, `gated-gelu` (T5 v1.1, the SD3/FLUX encoder) or `gated-silu`.
    #[serde(default = "relu")]
    pub feed_forward_proj: String,
    /// Padding id.
    #[serde(default)]
    pub pad_token_id: u32,
    /// End-of-sequence id.
    #[serde(default = "one")]
    pub eos_token_id: u32,
}

fn d32() -> usize {
    32
}
fn d128() -> usize {
    128
}
fn eps() -> f64 {
    1e-6
}
fn relu() -> String {
    "relu".into()
}
fn one() -> u32 {
    1
}

impl T5Config {
    /// Reads and checks `config.json` of a T5 encoder folder.
    pub fn from_file(path: &Path) -> Result<Self> {
        let config: Self = read_json(path)?;
        config.activation().ok_or_else(|| Error::Unsupported {
            path: path.to_path_buf(),
            field: "feed_forward_proj".into(),
            detail: format!(
                "`{}` (supported: relu, gelu_new, gated-gelu, gated-silu)",
                config.feed_forward_proj
            ),
        })?;
        Ok(config)
    }

    fn activation(&self) -> Option<t5::ActivationWithOptionalGating> {
        use candle_nn::Activation;
        let (gated, activation) = match self.feed_forward_proj.as_str() {
            "relu" => (false, Activation::Relu),
            "gelu_new" => (false, Activation::NewGelu),
            "gated-gelu" => (true, Activation::NewGelu),
            "gated-silu" => (true, Activation::Silu),
            _ => return None,
        };
        Some(t5::ActivationWithOptionalGating { gated, activation })
    }

    fn candle_config(&self) -> t5::Config {
        t5::Config {
            vocab_size: self.vocab_size,
            d_model: self.d_model,
            d_kv: self.d_kv,
            d_ff: self.d_ff,
            num_layers: self.num_layers,
            num_decoder_layers: None,
            num_heads: self.num_heads,
            relative_attention_num_buckets: self.relative_attention_num_buckets,
            relative_attention_max_distance: self.relative_attention_max_distance,
            dropout_rate: 0.0,
            layer_norm_epsilon: self.layer_norm_epsilon,
            initializer_factor: 1.0,
            feed_forward_proj: self.activation().unwrap_or_default(),
            tie_word_embeddings: true,
            is_decoder: false,
            is_encoder_decoder: true,
            use_cache: false,
            pad_token_id: self.pad_token_id as usize,
            eos_token_id: self.eos_token_id as usize,
            decoder_start_token_id: None,
        }
    }
}

/// A T5 encoder with its weights and, when the folder has one, its tokenizer.
pub struct T5TextEncoder {
    config: T5Config,
    model: t5::T5EncoderModel,
    tokenizer: Option<(PathBuf, Tokenizer)>,
    tokenizer_dir: PathBuf,
}

impl std::fmt::Debug for T5TextEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("T5TextEncoder")
            .field("config", &self.config)
            .field("tokenizer_dir", &self.tokenizer_dir)
            .finish()
    }
}

impl T5TextEncoder {
    /// Loads `config.json` and `model.safetensors` (or its shards) from `dir`, and
    /// `tokenizer_dir/tokenizer.json` when it exists.
    pub fn load(dir: &Path, tokenizer_dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let config = T5Config::from_file(&dir.join("config.json"))?;
        let weights = Weights::open(dir, "model", dtype, device)?;
        let candle_config = config.candle_config();
        let model = weights.build(|vb| t5::T5EncoderModel::load(vb, &candle_config))?;
        let file = tokenizer_dir.join("tokenizer.json");
        let tokenizer = if file.is_file() {
            let t = Tokenizer::from_file(&file).map_err(|e| Error::Tokenizer {
                path: file.clone(),
                detail: e.to_string(),
            })?;
            Some((file, t))
        } else {
            None
        };
        Ok(Self {
            config,
            model,
            tokenizer,
            tokenizer_dir: tokenizer_dir.to_path_buf(),
        })
    }

    /// The config the encoder was built from.
    pub fn config(&self) -> &T5Config {
        &self.config
    }

    /// The empty prompt: just the end-of-sequence id (what the tokenizer makes of "").
    pub fn empty_prompt(&self) -> Prompt {
        Prompt::Tokens(vec![self.config.eos_token_id])
    }

    /// Exactly `len` ids for `prompt`: text is tokenized (pieces truncated to `len - 1`,
    /// then `</s>`); token ids are taken as given. Both are padded with the pad id.
    pub fn token_ids(&self, prompt: &Prompt, len: usize) -> Result<Vec<u32>> {
        let mut ids = match prompt {
            Prompt::Text(text) => {
                let Some((path, tokenizer)) = &self.tokenizer else {
                    return Err(Error::NoTokenizer {
                        path: self.tokenizer_dir.join("tokenizer.json"),
                    });
                };
                let encoding =
                    tokenizer
                        .encode(text.as_str(), false)
                        .map_err(|e| Error::Tokenizer {
                            path: path.clone(),
                            detail: e.to_string(),
                        })?;
                let body = encoding.get_ids();
                let keep = body.len().min(len.saturating_sub(1));
                let mut ids = body[..keep].to_vec();
                ids.push(self.config.eos_token_id);
                ids
            }
            Prompt::Tokens(ids) => {
                if ids.len() > len {
                    return Err(invalid(
                        "t5_prompt",
                        format!(
                            "{} token ids, more than the sequence length {len}",
                            ids.len()
                        ),
                    ));
                }
                ids.clone()
            }
        };
        ids.resize(len, self.config.pad_token_id);
        if let Some(bad) = ids
            .iter()
            .find(|&&id| id as usize >= self.config.vocab_size)
        {
            return Err(invalid(
                "t5_prompt",
                format!(
                    "token id {bad} outside the T5 vocabulary of {}",
                    self.config.vocab_size
                ),
            ));
        }
        Ok(ids)
    }

    /// The last hidden state `[1, len, d_model]` for `prompt`.
    pub fn encode(&self, prompt: &Prompt, len: usize) -> Result<Tensor> {
        let ids = self.token_ids(prompt, len)?;
        let device = self.model.device().clone();
        let input = Tensor::new(ids.as_slice(), &device)?.unsqueeze(0)?;
        // candle's forward takes `&mut self` for a decoder cache the encoder never uses;
        // a clone shares the weights.
        let mut model = self.model.clone();
        Ok(model.forward(&input)?)
    }
}
