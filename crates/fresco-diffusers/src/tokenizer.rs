//! Prompt tokenization for CLIP text encoders: loads `tokenizer/tokenizer.json`, or builds
//! CLIP's byte-level BPE from `vocab.json` and `merges.txt` (the files diffusers folders
//! usually ship), and turns a prompt into exactly `max_length` ids the way diffusers'
//! pipelines do: begin token, the prompt's tokens (truncated), end token, then padding
//! with the tokenizer's pad token.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokenizers::Tokenizer;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Lowercase, NFC, Replace, Sequence as NormSeq};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSeq;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior};

use crate::error::{Error, Result};
use crate::files::read_json;

const BOS: &str = "<|startoftext|>";
const EOS: &str = "<|endoftext|>";
/// CLIP's pre-tokenization pattern (as transformers' CLIP converter writes it).
const CLIP_PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// A CLIP prompt tokenizer with its special ids.
pub struct PromptTokenizer {
    path: PathBuf,
    inner: Tokenizer,
    bos: u32,
    eos: u32,
    pad: u32,
}

impl std::fmt::Debug for PromptTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptTokenizer")
            .field("path", &self.path)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("pad", &self.pad)
            .finish()
    }
}

/// A special token as `tokenizer_config.json` writes it: a string or `{ "content": .. }`.
#[derive(Deserialize)]
#[serde(untagged)]
enum TokenSpec {
    Plain(String),
    Added { content: String },
}

#[derive(Deserialize, Default)]
struct TokenizerConfig {
    #[serde(default)]
    pad_token: Option<TokenSpec>,
}

impl PromptTokenizer {
    /// The file a tokenizer folder is expected to hold first.
    pub fn primary_file(dir: &Path) -> PathBuf {
        dir.join("tokenizer.json")
    }

    /// Whether `dir` holds tokenizer files.
    pub fn exists(dir: &Path) -> bool {
        Self::primary_file(dir).is_file()
            || (dir.join("vocab.json").is_file() && dir.join("merges.txt").is_file())
    }

    /// Loads the tokenizer of a tokenizer folder; [`Error::NoTokenizer`] naming
    /// `tokenizer.json` when the folder holds neither it nor `vocab.json` + `merges.txt`.
    pub fn load(dir: &Path) -> Result<Self> {
        let json = Self::primary_file(dir);
        let (path, inner) = if json.is_file() {
            let inner = Tokenizer::from_file(&json).map_err(|e| Error::Tokenizer {
                path: json.clone(),
                detail: e.to_string(),
            })?;
            (json, inner)
        } else if dir.join("vocab.json").is_file() && dir.join("merges.txt").is_file() {
            let vocab = dir.join("vocab.json");
            let inner = clip_bpe(&vocab, &dir.join("merges.txt"))?;
            (vocab, inner)
        } else {
            return Err(Error::NoTokenizer { path: json });
        };
        let id = |token: &str| {
            inner.token_to_id(token).ok_or_else(|| Error::Tokenizer {
                path: path.clone(),
                detail: format!("no id for `{token}`"),
            })
        };
        let (bos, eos) = (id(BOS)?, id(EOS)?);
        let config_path = dir.join("tokenizer_config.json");
        let config: TokenizerConfig = if config_path.is_file() {
            read_json(&config_path)?
        } else {
            TokenizerConfig::default()
        };
        let pad = match config.pad_token {
            Some(TokenSpec::Plain(t)) | Some(TokenSpec::Added { content: t }) => id(&t)?,
            None => eos,
        };
        Ok(Self {
            path,
            inner,
            bos,
            eos,
            pad,
        })
    }

    /// `max_length` ids for `text`: begin, tokens (truncated), end, padding.
    pub fn encode(&self, text: &str, max_length: usize) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::Tokenizer {
                path: self.path.clone(),
                detail: e.to_string(),
            })?;
        let body = encoding.get_ids();
        let keep = body.len().min(max_length.saturating_sub(2));
        let mut ids = Vec::with_capacity(max_length);
        ids.push(self.bos);
        ids.extend_from_slice(&body[..keep]);
        ids.push(self.eos);
        ids.resize(max_length, self.pad);
        Ok(ids)
    }
}

/// CLIP's tokenizer from its vocabulary and merges (transformers' `CLIPConverter`).
fn clip_bpe(vocab: &Path, merges: &Path) -> Result<Tokenizer> {
    let err = |detail: String| Error::Tokenizer {
        path: vocab.to_path_buf(),
        detail,
    };
    let model = BPE::from_file(&vocab.to_string_lossy(), &merges.to_string_lossy())
        .end_of_word_suffix("</w>".into())
        .unk_token(EOS.into())
        .build()
        .map_err(|e| err(e.to_string()))?;
    let mut tokenizer = Tokenizer::new(model);
    let whitespace = Replace::new(
        tokenizers::normalizers::replace::ReplacePattern::Regex(r"\s+".into()),
        " ",
    )
    .map_err(|e| err(e.to_string()))?;
    let normalizer = NormSeq::new(vec![
        NormalizerWrapper::from(NFC),
        NormalizerWrapper::from(whitespace),
        NormalizerWrapper::from(Lowercase),
    ]);
    tokenizer
        .with_normalizer(Some(normalizer))
        .map_err(|e| err(e.to_string()))?;
    let split = Split::new(
        SplitPattern::Regex(CLIP_PATTERN.into()),
        SplitDelimiterBehavior::Removed,
        true,
    )
    .map_err(|e| err(e.to_string()))?;
    tokenizer.with_pre_tokenizer(Some(PreSeq::new(vec![
        PreTokenizerWrapper::from(split),
        PreTokenizerWrapper::from(ByteLevel::new(false, false, false)),
    ])));
    Ok(tokenizer)
}
