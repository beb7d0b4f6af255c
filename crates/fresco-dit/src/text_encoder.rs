//! Caption encoder: token embedding + learned position embedding + a few
//! pre-LN transformer layers; yields per-token features (for cross-attention)
//! and their mean (pooled, added to the DiT conditioning vector).

use candle_core::{Device, Module, Tensor};
use candle_nn::init::Init;
use candle_nn::{Embedding, VarBuilder, embedding};
use fresco_pipeline::{Error, Result};

use crate::config::TextConfig;
use crate::layers::{Attention, Mlp, Norm, affine_norm, mean_tokens};

/// One encoded caption.
pub(crate) struct EncodedText {
    /// `[1, L, text_hidden]`
    pub tokens: Tensor,
    /// `[1, text_hidden]`
    pub pooled: Tensor,
}

struct TextLayer {
    norm1: Norm,
    attn: Attention,
    norm2: Norm,
    mlp: Mlp,
}

impl TextLayer {
    fn new(cfg: &TextConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        Ok(Self {
            norm1: affine_norm(d, vb.pp("norm1"))?,
            attn: Attention::new(d, d, cfg.num_heads, vb.pp("attn"))?,
            norm2: affine_norm(d, vb.pp("norm2"))?,
            mlp: Mlp::new(d, 4 * d, vb.pp("mlp"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.norm1.forward(x)?;
        let x = (x + self.attn.forward(&h, &h, None)?)?;
        let h = self.norm2.forward(&x)?;
        Ok((&x + self.mlp.forward(&h)?)?)
    }
}

/// The caption encoder (weights under `text.`).
pub(crate) struct TextEncoder {
    tok_emb: Embedding,
    pos_emb: Tensor,
    layers: Vec<TextLayer>,
    final_norm: Norm,
    max_tokens: usize,
    table_size: usize,
}

impl TextEncoder {
    /// `table_size` = vocabulary size + 1 (the null token).
    pub(crate) fn new(cfg: &TextConfig, table_size: usize, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        let pos_emb = vb.get_with_hints(
            (cfg.max_tokens, d),
            "pos_emb",
            Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        let layers = (0..cfg.num_layers)
            .map(|i| TextLayer::new(cfg, vb.pp(format!("layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            tok_emb: embedding(table_size, d, vb.pp("tok_emb"))?,
            pos_emb,
            layers,
            final_norm: affine_norm(d, vb.pp("final_norm"))?,
            max_tokens: cfg.max_tokens,
            table_size,
        })
    }

    /// Encodes one caption given as token ids (1..=max_tokens ids, all < table size).
    pub(crate) fn encode(&self, ids: &[u32], device: &Device) -> Result<EncodedText> {
        if ids.is_empty() || ids.len() > self.max_tokens {
            return Err(Error::InvalidParams(format!(
                "caption must have 1..={} tokens, got {}",
                self.max_tokens,
                ids.len()
            )));
        }
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= self.table_size) {
            return Err(Error::InvalidParams(format!(
                "token id {bad} outside the vocabulary ({} entries)",
                self.table_size
            )));
        }
        let n = ids.len();
        let ids = Tensor::from_vec(ids.to_vec(), (1, n), device)?;
        let pos = self.pos_emb.narrow(0, 0, n)?.unsqueeze(0)?;
        let mut x = self.tok_emb.forward(&ids)?.broadcast_add(&pos)?;
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        let tokens = self.final_norm.forward(&x)?;
        let pooled = mean_tokens(&tokens)?;
        Ok(EncodedText { tokens, pooled })
    }
}
