//! Word-level tokenizer: prompt text → token ids over a fixed vocabulary.

use std::collections::HashMap;

use tracing::warn;

/// Token id of the learned null token (empty caption / unconditional input).
pub const NULL_TOKEN: u32 = 0;

/// Maps lowercase words to ids; word `vocab[i]` is id `i + 1`, id 0 is [`NULL_TOKEN`].
#[derive(Debug, Clone)]
pub struct Tokenizer {
    ids: HashMap<String, u32>,
    max_tokens: usize,
}

/// The result of tokenizing one caption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// Token ids fed to the text encoder; never empty (`[NULL_TOKEN]` when no word is known).
    pub ids: Vec<u32>,
    /// Words that are not in the vocabulary and were dropped, in prompt order.
    pub unknown: Vec<String>,
    /// Known words dropped because the caption exceeded `max_tokens`.
    pub truncated: usize,
}

impl Tokenizer {
    /// Builds a tokenizer over `vocab` (id order) keeping at most `max_tokens` tokens.
    pub fn new(vocab: &[String], max_tokens: usize) -> Self {
        let ids = vocab
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), (i + 1) as u32))
            .collect();
        Self { ids, max_tokens }
    }

    /// Number of embedding rows the text encoder needs (vocabulary + null token).
    pub fn table_size(&self) -> usize {
        self.ids.len() + 1
    }

    /// Lowercases `text`, splits it on non-alphanumeric characters and looks up each word.
    ///
    /// Unknown words are dropped (and logged with `warn!`), the rest is truncated to
    /// `max_tokens`; if nothing remains the caption is the single null token.
    pub fn tokenize(&self, text: &str) -> Tokens {
        let lower = text.to_lowercase();
        let mut ids = Vec::new();
        let mut unknown = Vec::new();
        for word in lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            match self.ids.get(word) {
                Some(&id) => ids.push(id),
                None => unknown.push(word.to_owned()),
            }
        }
        if !unknown.is_empty() {
            warn!(words = ?unknown, "dropping prompt words not in the model vocabulary");
        }
        let truncated = ids.len().saturating_sub(self.max_tokens);
        if truncated > 0 {
            warn!(
                max_tokens = self.max_tokens,
                dropped = truncated,
                "prompt truncated to the model's maximum caption length"
            );
            ids.truncate(self.max_tokens);
        }
        if ids.is_empty() {
            ids.push(NULL_TOKEN);
        }
        Tokens {
            ids,
            unknown,
            truncated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok() -> Tokenizer {
        let vocab: Vec<String> = ["a", "red", "cat", "café"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        Tokenizer::new(&vocab, 3)
    }

    #[test]
    fn splits_lowercases_and_maps() {
        let t = tok().tokenize("A  red-CAT!!");
        assert_eq!(t.ids, vec![1, 2, 3]);
        assert!(t.unknown.is_empty());
        assert_eq!(tok().tokenize("CAFÉ").ids, vec![4]);
    }

    #[test]
    fn unknown_words_are_dropped_and_reported() {
        let t = tok().tokenize("a zebra, cat");
        assert_eq!(t.ids, vec![1, 3]);
        assert_eq!(t.unknown, vec!["zebra".to_owned()]);
    }

    #[test]
    fn empty_or_unknown_only_gives_null_token() {
        assert_eq!(tok().tokenize("").ids, vec![NULL_TOKEN]);
        assert_eq!(tok().tokenize("  ?? ").ids, vec![NULL_TOKEN]);
        assert_eq!(tok().tokenize("zebra").ids, vec![NULL_TOKEN]);
    }

    #[test]
    fn long_captions_are_truncated() {
        let t = tok().tokenize("a a red red cat");
        assert_eq!(t.ids, vec![1, 1, 2]);
        assert_eq!(t.truncated, 2);
    }
}
