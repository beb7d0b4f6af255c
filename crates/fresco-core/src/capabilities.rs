//! What each model family accepts, defined once: the samplers it runs, the
//! schedule knobs it reads, the image sides it renders, whether a negative
//! prompt and classifier-free guidance apply — and the ids of the models
//! every worker serves without files, `noop` (no sampling, blank images)
//! among them.
//!
//! The coordinator's validation accepts the union of the families' samplers
//! ([`all_samplers`]), then admits each task only where some known
//! capability set of its model does
//! ([`ModelCapabilities`](crate::ModelCapabilities), built from a family's
//! entry and the model's own config); each pipeline still checks a task
//! against its own family's entry ([`Family::capabilities`]). Plain data: no
//! candle, no gRPC.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::schedule::Schedule;

/// Id of fresco's own DiT trained on captioned shapes, shipped inside the worker.
pub const FRESCO_SHAPES: &str = "fresco-shapes";
/// Id of the tiny built-in DiT with seeded random weights.
pub const TINY_RANDOM_DIT: &str = "tiny-random-dit";
/// Id of the second tiny built-in DiT (same architecture, other weights).
pub const TINY_RANDOM_DIT_B: &str = "tiny-random-dit-b";

/// Id of the built-in model that samples nothing: blank images of the asked
/// size through every farm path (claim, progress, upload, completion), for
/// benchmarks and for trying a farm.
pub const NOOP: &str = "noop";

/// The model of a submission that names none: fresco's own trained model of
/// captioned shapes, shipped inside the worker.
pub const DEFAULT_MODEL: &str = FRESCO_SHAPES;

/// Models every worker can serve without any files: the trained
/// [`DEFAULT_MODEL`], tiny configurations with seeded random weights for
/// tests and smoke runs, and [`NOOP`].
pub const BUILTIN_MODELS: &[&str] = &[FRESCO_SHAPES, TINY_RANDOM_DIT, TINY_RANDOM_DIT_B, NOOP];

/// The built-in models that are fresco DiTs: [`BUILTIN_MODELS`] but [`NOOP`].
pub const DIT_BUILTIN_MODELS: &[&str] = &[FRESCO_SHAPES, TINY_RANDOM_DIT, TINY_RANDOM_DIT_B];

/// A family of models that share a pipeline and so accept the same tasks.
/// Named on the wire and in JSON by [`Family::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// fresco's pixel-space DiT (the built-in models and DiT model folders).
    Dit,
    /// Diffusers-layout Stable Diffusion 1.x/2.x and SDXL folders (a UNet).
    StableDiffusion,
    /// Diffusers-layout Stable Diffusion 3 folders (an MMDiT, flow matching).
    Sd3,
    /// Diffusers-layout FLUX.1 schnell and dev folders (flow matching).
    Flux,
    /// The built-in [`NOOP`] model: it samples nothing, so it accepts every
    /// sampler and knob of the other families and ignores them.
    Noop,
}

/// Every family, in the order [`all_samplers`] lists their samplers.
pub const FAMILIES: &[Family] = &[
    Family::Dit,
    Family::StableDiffusion,
    Family::Sd3,
    Family::Flux,
    Family::Noop,
];

/// The schedule knobs of a task a family reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knobs {
    /// Every knob: the beta-schedule knobs (betas, beta schedule, prediction
    /// type, timestep spacing, Karras sigmas, eta) override the folder's
    /// scheduler config, as does `flow_shift`.
    BetaSchedule,
    /// Only `flow_shift`: a flow-matching model has no betas, and a task that
    /// sets any other knob is refused.
    FlowShiftOnly,
}

impl Knobs {
    /// Whether `schedule` sets only knobs this family reads.
    pub fn allow(self, schedule: &Schedule) -> bool {
        match self {
            Self::BetaSchedule => true,
            Self::FlowShiftOnly => {
                let flow_only = Schedule {
                    flow_shift: schedule.flow_shift,
                    ..Schedule::default()
                };
                *schedule == flow_only
            }
        }
    }
}

/// The latent cells one transformer token covers along a side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patch {
    /// A fixed count: 1 for a UNet (no tokens), 2 for FLUX's 2×2 packing.
    Fixed(usize),
    /// The `patch_size` of the model's config.
    FromConfig,
}

/// Which image widths and heights a family renders: positive multiples of
/// [`Sides::multiple`], and at most the config's `max_side` where it has one.
/// The coordinator's own limits (a multiple of 8, at most 2048) apply first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sides {
    /// Whether the model samples pixels directly (no VAE downscale).
    pub pixel_space: bool,
    /// The latent cells per token side.
    pub patch: Patch,
    /// Whether the model's config caps a side at its `max_side`.
    pub max_side_in_config: bool,
}

impl Sides {
    /// The multiple every side must be, for a model whose VAE downscales by
    /// `vae_factor` (ignored in pixel space) and whose config's patch size is
    /// `config_patch` (ignored when the patch is fixed).
    pub fn multiple(&self, vae_factor: usize, config_patch: usize) -> usize {
        let factor = if self.pixel_space { 1 } else { vae_factor };
        let patch = match self.patch {
            Patch::Fixed(p) => p,
            Patch::FromConfig => config_patch,
        };
        factor * patch
    }
}

/// What the guidance value of a task does in a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guidance {
    /// Classifier-free guidance, on when the value is above 1 (see the
    /// pipeline contract's `guidance_enabled`): the model runs on the negative
    /// (or empty) prompt too and the two predictions are mixed.
    ClassifierFree,
    /// Fed to the model's guidance embedding (FLUX-dev), one pass per step;
    /// a model without one (FLUX-schnell) ignores it.
    Embedded,
}

/// What one model family accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The family.
    pub family: Family,
    /// Sampler names it runs.
    pub samplers: &'static [&'static str],
    /// Schedule knobs it reads.
    pub knobs: Knobs,
    /// Image sides it renders.
    pub sides: Sides,
    /// Whether a negative prompt changes its images (elsewhere it is ignored).
    pub negative_prompt: bool,
    /// What the guidance value does.
    pub guidance: Guidance,
}

impl Capabilities {
    /// Whether the family runs the sampler `name`.
    pub fn runs(&self, name: &str) -> bool {
        self.samplers.contains(&name)
    }
}

const DIT: Capabilities = Capabilities {
    family: Family::Dit,
    samplers: &["euler", "heun"],
    knobs: Knobs::FlowShiftOnly,
    sides: Sides {
        pixel_space: true,
        patch: Patch::FromConfig,
        max_side_in_config: true,
    },
    negative_prompt: true,
    guidance: Guidance::ClassifierFree,
};

const STABLE_DIFFUSION: Capabilities = Capabilities {
    family: Family::StableDiffusion,
    samplers: &[
        "ddim",
        "ddpm",
        "euler",
        "euler_a",
        "heun",
        "dpmpp_2m",
        "dpmpp_2m_karras",
        "unipc",
    ],
    knobs: Knobs::BetaSchedule,
    sides: Sides {
        pixel_space: false,
        patch: Patch::Fixed(1),
        max_side_in_config: false,
    },
    negative_prompt: true,
    guidance: Guidance::ClassifierFree,
};

/// Samplers of the flow-matching folders (SD3, FLUX).
const FLOW_SAMPLERS: &[&str] = &["flow_euler"];

const SD3: Capabilities = Capabilities {
    family: Family::Sd3,
    samplers: FLOW_SAMPLERS,
    knobs: Knobs::FlowShiftOnly,
    sides: Sides {
        pixel_space: false,
        patch: Patch::FromConfig,
        max_side_in_config: false,
    },
    negative_prompt: true,
    guidance: Guidance::ClassifierFree,
};

const FLUX: Capabilities = Capabilities {
    family: Family::Flux,
    samplers: FLOW_SAMPLERS,
    knobs: Knobs::FlowShiftOnly,
    sides: Sides {
        pixel_space: false,
        patch: Patch::Fixed(2),
        max_side_in_config: false,
    },
    negative_prompt: false,
    guidance: Guidance::Embedded,
};

/// Every sampler of the diffusion families: the ones [`NOOP`] accepts (a
/// test checks it is [`all_samplers`]).
const EVERY_SAMPLER: &[&str] = &[
    "euler",
    "heun",
    "ddim",
    "ddpm",
    "euler_a",
    "dpmpp_2m",
    "dpmpp_2m_karras",
    "unipc",
    "flow_euler",
];

const NOOP_FAMILY: Capabilities = Capabilities {
    family: Family::Noop,
    samplers: EVERY_SAMPLER,
    knobs: Knobs::BetaSchedule,
    sides: Sides {
        pixel_space: true,
        patch: Patch::Fixed(1),
        max_side_in_config: false,
    },
    negative_prompt: true,
    guidance: Guidance::ClassifierFree,
};

impl Family {
    /// The family's name on the wire: `dit`, `stable-diffusion`, `sd3`,
    /// `flux` or `noop`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Dit => "dit",
            Self::StableDiffusion => "stable-diffusion",
            Self::Sd3 => "sd3",
            Self::Flux => "flux",
            Self::Noop => "noop",
        }
    }

    /// The family named `name` (see [`Family::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        FAMILIES.iter().copied().find(|f| f.name() == name)
    }

    /// What this family accepts.
    pub const fn capabilities(self) -> &'static Capabilities {
        match self {
            Self::Dit => &DIT,
            Self::StableDiffusion => &STABLE_DIFFUSION,
            Self::Sd3 => &SD3,
            Self::Flux => &FLUX,
            Self::Noop => &NOOP_FAMILY,
        }
    }
}

/// Every sampler some family runs, each once, in [`FAMILIES`] order: what a
/// task may ask for. Which ones a model runs is its family's business.
pub fn all_samplers() -> &'static [&'static str] {
    static ALL: OnceLock<Vec<&'static str>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all: Vec<&'static str> = Vec::new();
        for name in FAMILIES
            .iter()
            .flat_map(|f| f.capabilities().samplers.iter())
        {
            if !all.contains(name) {
                all.push(name);
            }
        }
        all
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_union_lists_each_sampler_once_dit_first() {
        assert_eq!(
            all_samplers(),
            [
                "euler",
                "heun",
                "ddim",
                "ddpm",
                "euler_a",
                "dpmpp_2m",
                "dpmpp_2m_karras",
                "unipc",
                "flow_euler",
            ]
        );
        for family in FAMILIES {
            for sampler in family.capabilities().samplers {
                assert!(all_samplers().contains(sampler), "{family:?}: {sampler}");
            }
        }
    }

    #[test]
    fn noop_accepts_every_sampler_and_knob() {
        let noop = Family::Noop.capabilities();
        assert_eq!(noop.samplers, all_samplers());
        assert_eq!(noop.knobs, Knobs::BetaSchedule);
        assert_eq!(Family::from_name("noop"), Some(Family::Noop));
        assert_eq!(BUILTIN_MODELS.last(), Some(&NOOP));
        assert!(!DIT_BUILTIN_MODELS.contains(&NOOP));
    }

    #[test]
    fn flow_models_read_only_flow_shift() {
        let shift = Schedule {
            flow_shift: Some(3.0),
            ..Schedule::default()
        };
        let eta = Schedule {
            eta: Some(0.5),
            ..shift.clone()
        };
        for family in [Family::Dit, Family::Sd3, Family::Flux] {
            let knobs = family.capabilities().knobs;
            assert!(knobs.allow(&Schedule::default()) && knobs.allow(&shift));
            assert!(!knobs.allow(&eta), "{family:?}");
        }
        assert!(Family::StableDiffusion.capabilities().knobs.allow(&eta));
    }

    #[test]
    fn family_names_round_trip_and_match_serde() {
        for &family in FAMILIES {
            assert_eq!(Family::from_name(family.name()), Some(family));
            let json = serde_json::to_string(&family).unwrap();
            assert_eq!(json, format!("\"{}\"", family.name()));
        }
        assert_eq!(Family::from_name("unet"), None);
    }

    #[test]
    fn side_multiples_follow_the_vae_and_the_patch() {
        let multiple = |f: Family, vae, patch| f.capabilities().sides.multiple(vae, patch);
        assert_eq!(multiple(Family::Dit, 8, 4), 4, "pixel space: the patch");
        assert_eq!(multiple(Family::StableDiffusion, 8, 2), 8, "the VAE factor");
        assert_eq!(multiple(Family::Sd3, 8, 2), 16, "VAE × patch");
        assert_eq!(multiple(Family::Flux, 8, 0), 16, "VAE × 2x2 packing");
    }
}
