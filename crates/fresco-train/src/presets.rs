//! Model presets for the `fresco-shapes` DiT: `tiny` (tests, seconds) and `small`
//! (the shipped model), both with the caption vocabulary of `fresco_shapes` and
//! adaLN-Zero initialisation.

use clap::ValueEnum;
use fresco_dit::{DitConfig, Prediction, TextConfig};
use serde::{Deserialize, Serialize};

/// A named architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// hidden 64, depth 2, patch 4: for tests and smoke runs.
    Tiny,
    /// hidden 128, depth 6, patch 4: the shipped model at 32×32.
    Small,
}

/// The vocabulary of every `fresco_shapes` caption, as `TextConfig::vocab`.
pub fn shapes_vocab() -> Vec<String> {
    fresco_shapes::vocabulary()
        .into_iter()
        .map(str::to_owned)
        .collect()
}

impl Preset {
    /// The model configuration (vocabulary from [`fresco_shapes::vocabulary`],
    /// `adaln_zero` on, `max_side` 64, velocity head; `fresco-train --prediction`
    /// switches the head).
    pub fn config(self) -> DitConfig {
        let (hidden, depth, heads, text_hidden, text_layers, freq) = match self {
            Preset::Tiny => (64, 2, 4, 32, 1, 32),
            Preset::Small => (128, 6, 4, 128, 2, 128),
        };
        DitConfig {
            in_channels: 3,
            patch_size: 4,
            hidden_size: hidden,
            depth,
            num_heads: heads,
            mlp_ratio: 4.0,
            freq_embed_size: freq,
            shift: 1.0,
            max_side: 64,
            text: TextConfig {
                hidden_size: text_hidden,
                num_layers: text_layers,
                num_heads: heads,
                max_tokens: 16,
                vocab: shapes_vocab(),
            },
            adaln_zero: true,
            prediction: Prediction::Velocity,
            refiner_channels: 0,
            layout_hidden: 0,
            learned_positions: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_cover_every_caption_word() {
        for p in [Preset::Tiny, Preset::Small] {
            p.config().validate().unwrap();
        }
        let cfg = Preset::Small.config();
        let tok = fresco_dit::tokenizer::Tokenizer::new(&cfg.text.vocab, cfg.text.max_tokens);
        for s in fresco_shapes::Dataset::generate(5, 200, 16, fresco_shapes::Split::All).unwrap() {
            let t = tok.tokenize(&s.caption);
            assert!(t.unknown.is_empty() && t.truncated == 0, "{}", s.caption);
        }
    }
}
