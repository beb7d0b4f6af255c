//! A CLIP text encoder paired with its tokenizer folder, for the SD3 and FLUX pipelines:
//! loads `text_encoder*/` (and `tokenizer*/` when present) and turns a [`Prompt`] into the
//! encoder's outputs (text through the tokenizer, token ids padded with the pad id).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::clip::{ClipOutput, ClipTextModel};
use crate::error::{Error, Result, invalid};
use crate::pipeline::Prompt;
use crate::tokenizer::PromptTokenizer;

/// A CLIP encoder and its (optional) tokenizer.
#[derive(Debug)]
pub struct ClipPromptEncoder {
    model: ClipTextModel,
    tokenizer: Option<PromptTokenizer>,
    tokenizer_dir: PathBuf,
}

impl ClipPromptEncoder {
    /// Loads the encoder folder `dir` and the tokenizer folder `tokenizer_dir` if it holds
    /// tokenizer files.
    pub fn load(dir: &Path, tokenizer_dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let model = ClipTextModel::load(dir, dtype, device)?;
        let tokenizer = if PromptTokenizer::exists(tokenizer_dir) {
            Some(PromptTokenizer::load(tokenizer_dir)?)
        } else {
            None
        };
        Ok(Self {
            model,
            tokenizer,
            tokenizer_dir: tokenizer_dir.to_path_buf(),
        })
    }

    /// The encoder.
    pub fn model(&self) -> &ClipTextModel {
        &self.model
    }

    /// The encoder's `max_position_embeddings` ids for `prompt`.
    pub fn token_ids(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        let config = self.model.config();
        let len = config.max_position_embeddings;
        let ids = match prompt {
            Prompt::Text(text) => match &self.tokenizer {
                Some(t) => t.encode(text, len)?,
                None => {
                    return Err(Error::NoTokenizer {
                        path: PromptTokenizer::primary_file(&self.tokenizer_dir),
                    });
                }
            },
            Prompt::Tokens(ids) => {
                if ids.len() > len {
                    return Err(invalid(
                        "prompt",
                        format!("{} token ids, more than the encoder's {len}", ids.len()),
                    ));
                }
                let mut ids = ids.clone();
                ids.resize(len, config.pad_id());
                ids
            }
        };
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= config.vocab_size) {
            return Err(invalid(
                "prompt",
                format!(
                    "token id {bad} outside the vocabulary of {}",
                    config.vocab_size
                ),
            ));
        }
        Ok(ids)
    }

    /// The empty prompt (diffusers' default negative prompt): text when a tokenizer is
    /// present, else the begin and end tokens.
    pub fn empty_prompt(&self) -> Prompt {
        match &self.tokenizer {
            Some(_) => Prompt::Text(String::new()),
            None => {
                let c = self.model.config();
                Prompt::Tokens(vec![c.bos_token_id, c.eos_token_id])
            }
        }
    }

    /// Runs the encoder on `prompt`.
    pub fn encode(&self, prompt: &Prompt, device: &Device) -> Result<ClipOutput> {
        let ids = self.token_ids(prompt)?;
        self.model
            .forward(&Tensor::new(ids.as_slice(), device)?.unsqueeze(0)?)
    }

    /// The penultimate hidden state `[1, seq, hidden]` (SD3's `clip_skip=None` choice).
    pub fn penultimate(out: &ClipOutput) -> Result<Tensor> {
        let n = out.hidden_states.len();
        out.hidden_states
            .get(n.saturating_sub(2))
            .cloned()
            .ok_or_else(|| invalid("text_encoder", "has no hidden layers"))
    }
}
