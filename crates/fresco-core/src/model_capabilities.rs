//! What one served model accepts ([`ModelCapabilities`]): its family's
//! samplers, knobs and negative-prompt rule, and the sides and batch its own
//! config allows; the one rule deciding whether a task fits it
//! ([`ModelCapabilities::admit`]); and the capabilities of the built-in
//! models, known without a worker ([`builtin_capabilities`]).
//!
//! A worker reports one set per served model when it registers; the
//! coordinator refuses at submit a task that no known set of its model
//! admits. The pipelines keep their own checks as the last line.

use serde::{Deserialize, Serialize};

use crate::capabilities::{FRESCO_SHAPES, Family, Knobs, NOOP, TINY_RANDOM_DIT, TINY_RANDOM_DIT_B};
use crate::error::FieldError;
use crate::params::TaskSpec;
use crate::schedule::Schedule;

/// What one model accepts. Plain data: the wire form is the proto message of
/// the same name (with the `grpc` feature), the stored form its JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelCapabilities {
    /// The model id.
    pub model: String,
    /// The model's family.
    pub family: Family,
    /// Sampler names it runs.
    pub samplers: Vec<String>,
    /// Every width and height must be a positive multiple of this.
    pub side_multiple: u32,
    /// The largest width or height it renders; `None`: no limit of its own.
    pub max_side: Option<u32>,
    /// The most images one task may ask for; `None`: no limit of its own.
    pub max_images: Option<u32>,
    /// Whether it reads the beta-schedule knobs (`false`: `flow_shift` only).
    pub beta_schedule_knobs: bool,
    /// Whether a negative prompt changes its images (`false`: refused).
    pub negative_prompt: bool,
}

impl ModelCapabilities {
    /// The capabilities of `model` of `family`: the family's samplers, knobs
    /// and negative-prompt rule, with the model's own sides and batch limit.
    pub fn of_family(
        model: impl Into<String>,
        family: Family,
        side_multiple: u32,
        max_side: Option<u32>,
        max_images: Option<u32>,
    ) -> Self {
        let accepts = family.capabilities();
        Self {
            model: model.into(),
            family,
            samplers: accepts.samplers.iter().map(|s| (*s).to_owned()).collect(),
            side_multiple,
            max_side,
            max_images,
            beta_schedule_knobs: accepts.knobs == Knobs::BetaSchedule,
            negative_prompt: accepts.negative_prompt,
        }
    }

    /// Whether this model can run `task`. A refusal names the task's field
    /// (`width`, `height`, `n`, `sampler`, `schedule`, `negative_prompt`)
    /// and a rule naming the model, its limit and the task's value.
    pub fn admit(&self, task: &TaskSpec) -> Result<(), FieldError> {
        self.admit_side("width", task.width)?;
        self.admit_side("height", task.height)?;
        self.admit_images(task.n)?;
        self.admit_sampler(&task.sampler)?;
        self.admit_schedule(&task.schedule)?;
        self.admit_negative_prompt(&task.negative_prompt)
    }

    fn refuse(&self, field: &str, rule: std::fmt::Arguments<'_>) -> Result<(), FieldError> {
        Err(FieldError::new(field, format!("{} {rule}", self.model)))
    }

    fn admit_side(&self, field: &str, value: u32) -> Result<(), FieldError> {
        let multiple = self.side_multiple.max(1);
        if value == 0 || !value.is_multiple_of(multiple) {
            return self.refuse(
                field,
                format_args!("draws multiples of {multiple} (got {value})"),
            );
        }
        match self.max_side {
            Some(max) if value > max => {
                self.refuse(field, format_args!("draws at most {max} (got {value})"))
            }
            _ => Ok(()),
        }
    }

    fn admit_images(&self, n: u32) -> Result<(), FieldError> {
        match self.max_images {
            Some(max) if n > max => self.refuse(
                "n",
                format_args!("renders at most {max} images per task (got {n})"),
            ),
            _ => Ok(()),
        }
    }

    fn admit_sampler(&self, sampler: &str) -> Result<(), FieldError> {
        if self.samplers.iter().any(|s| s == sampler) {
            return Ok(());
        }
        self.refuse(
            "sampler",
            format_args!("runs {} (got {sampler})", self.samplers.join(", ")),
        )
    }

    fn admit_schedule(&self, schedule: &Schedule) -> Result<(), FieldError> {
        if self.beta_schedule_knobs || Knobs::FlowShiftOnly.allow(schedule) {
            return Ok(());
        }
        self.refuse(
            "schedule",
            format_args!(
                "is a flow-matching model and reads only flow_shift of the schedule knobs (got {})",
                beta_knobs_set(schedule).join(", ")
            ),
        )
    }

    fn admit_negative_prompt(&self, negative: &str) -> Result<(), FieldError> {
        if self.negative_prompt || negative.is_empty() {
            return Ok(());
        }
        self.refuse(
            "negative_prompt",
            format_args!("ignores negative prompts (got {})", quoted(negative)),
        )
    }
}

/// The names of the knobs `schedule` sets other than `flow_shift`.
fn beta_knobs_set(schedule: &Schedule) -> Vec<&'static str> {
    let Schedule {
        num_train_timesteps,
        beta_start,
        beta_end,
        beta_schedule,
        prediction_type,
        timestep_spacing,
        karras_sigmas,
        flow_shift: _,
        eta,
    } = schedule;
    [
        ("num_train_timesteps", num_train_timesteps.is_some()),
        ("beta_start", beta_start.is_some()),
        ("beta_end", beta_end.is_some()),
        ("beta_schedule", beta_schedule.is_some()),
        ("prediction_type", prediction_type.is_some()),
        ("timestep_spacing", timestep_spacing.is_some()),
        ("karras_sigmas", karras_sigmas.is_some()),
        ("eta", eta.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect()
}

/// Characters of a refused prompt a rule quotes.
const QUOTED_CHARS: usize = 40;

/// `text` quoted, cut to [`QUOTED_CHARS`] characters with `...` after.
fn quoted(text: &str) -> String {
    if text.chars().count() <= QUOTED_CHARS {
        return format!("{text:?}");
    }
    let head: String = text.chars().take(QUOTED_CHARS).collect();
    format!("{head:?}...")
}

/// `(model, side_multiple, max_side)` of the built-in models: fresco's DiT
/// in pixel space, so a side is a multiple of the config's `patch_size` and
/// at most its `max_side` (fresco-dit's tests check these against the real
/// configs).
const BUILTIN_SIDES: &[(&str, u32, u32)] = &[
    (FRESCO_SHAPES, 4, 64),
    (TINY_RANDOM_DIT, 8, 512),
    (TINY_RANDOM_DIT_B, 8, 512),
];

/// The largest side [`NOOP`] draws: the coordinator's default `max_side`
/// (`Limits::default`), whose own multiple of 8 is its side multiple.
pub const NOOP_MAX_SIDE: u32 = 2048;

/// The side multiple of [`NOOP`]: the coordinator's default.
pub const NOOP_SIDE_MULTIPLE: u32 = 8;

/// The capabilities of a built-in model, known without a worker; `None`
/// for any other id. [`NOOP`] runs every sampler and knob, any image count,
/// and every side the coordinator admits by default.
pub fn builtin_capabilities(model: &str) -> Option<ModelCapabilities> {
    if model == NOOP {
        return Some(ModelCapabilities::of_family(
            NOOP,
            Family::Noop,
            NOOP_SIDE_MULTIPLE,
            Some(NOOP_MAX_SIDE),
            None,
        ));
    }
    BUILTIN_SIDES
        .iter()
        .find(|(id, _, _)| *id == model)
        .map(|&(id, multiple, max_side)| {
            ModelCapabilities::of_family(id, Family::Dit, multiple, Some(max_side), None)
        })
}

#[cfg(feature = "grpc")]
mod wire {
    use fresco_proto::v1 as pb;

    use super::ModelCapabilities;
    use crate::capabilities::Family;
    use crate::error::FieldError;

    impl ModelCapabilities {
        /// The wire form (`0` for "no limit of its own").
        pub fn to_proto(&self) -> pb::ModelCapabilities {
            pb::ModelCapabilities {
                model: self.model.clone(),
                family: self.family.name().to_owned(),
                samplers: self.samplers.clone(),
                side_multiple: self.side_multiple,
                max_side: self.max_side.unwrap_or(0),
                max_images: self.max_images.unwrap_or(0),
                beta_schedule_knobs: self.beta_schedule_knobs,
                negative_prompt: self.negative_prompt,
            }
        }

        /// Reads the wire form; errors name the message's field.
        pub fn from_proto(p: &pb::ModelCapabilities) -> Result<Self, FieldError> {
            let model = crate::validate::model_id(&p.model)?;
            let family = Family::from_name(&p.family).ok_or_else(|| {
                FieldError::new(
                    "family",
                    format!(
                        "must be dit, stable-diffusion, sd3, flux or noop (got {:?})",
                        p.family
                    ),
                )
            })?;
            if p.side_multiple == 0 {
                return Err(FieldError::new("side_multiple", "must be positive (got 0)"));
            }
            if p.samplers.is_empty() {
                return Err(FieldError::new(
                    "samplers",
                    "must name at least one sampler",
                ));
            }
            let limit = |v: u32| (v != 0).then_some(v);
            Ok(Self {
                model,
                family,
                samplers: p.samplers.clone(),
                side_multiple: p.side_multiple,
                max_side: limit(p.max_side),
                max_images: limit(p.max_images),
                beta_schedule_knobs: p.beta_schedule_knobs,
                negative_prompt: p.negative_prompt,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::{BUILTIN_MODELS, DIT_BUILTIN_MODELS};

    fn task() -> TaskSpec {
        TaskSpec {
            prompt: "a red circle".into(),
            negative_prompt: String::new(),
            seed: 1,
            steps: 4,
            width: 32,
            height: 32,
            guidance: 4.0,
            n: 1,
            sampler: "euler".into(),
            schedule: Schedule::default(),
        }
    }

    fn shapes() -> ModelCapabilities {
        builtin_capabilities(FRESCO_SHAPES).expect("built in")
    }

    fn flux() -> ModelCapabilities {
        ModelCapabilities::of_family("acme/flux", Family::Flux, 16, None, Some(8))
    }

    fn refusal(caps: &ModelCapabilities, task: TaskSpec) -> String {
        caps.admit(&task).expect_err("refused").to_string()
    }

    #[test]
    fn a_task_within_every_limit_is_admitted() {
        assert_eq!(shapes().admit(&task()), Ok(()));
        let at_limits = TaskSpec {
            width: 64,
            height: 4,
            sampler: "heun".into(),
            negative_prompt: "blurry".into(),
            schedule: Schedule {
                flow_shift: Some(3.0),
                ..Schedule::default()
            },
            ..task()
        };
        assert_eq!(shapes().admit(&at_limits), Ok(()));
        let flux_task = TaskSpec {
            width: 1024,
            height: 16,
            n: 8,
            sampler: "flow_euler".into(),
            ..task()
        };
        assert_eq!(flux().admit(&flux_task), Ok(()));
    }

    #[test]
    fn sides_beyond_the_model_maximum_are_refused() {
        let wide = TaskSpec {
            width: 512,
            height: 512,
            ..task()
        };
        assert_eq!(
            refusal(&shapes(), wide),
            "width: fresco-shapes draws at most 64 (got 512)"
        );
        let tall = TaskSpec {
            height: 72,
            ..task()
        };
        assert_eq!(
            refusal(&shapes(), tall),
            "height: fresco-shapes draws at most 64 (got 72)"
        );
        let no_limit = ModelCapabilities {
            max_side: None,
            ..shapes()
        };
        let huge = TaskSpec {
            width: 4096,
            ..task()
        };
        assert_eq!(no_limit.admit(&huge), Ok(()));
    }

    #[test]
    fn sides_off_the_model_multiple_are_refused() {
        let odd = TaskSpec {
            width: 30,
            ..task()
        };
        assert_eq!(
            refusal(&shapes(), odd),
            "width: fresco-shapes draws multiples of 4 (got 30)"
        );
        let flux_height = TaskSpec {
            height: 24,
            sampler: "flow_euler".into(),
            ..task()
        };
        assert_eq!(
            refusal(&flux(), flux_height),
            "height: acme/flux draws multiples of 16 (got 24)"
        );
        let zero = TaskSpec { width: 0, ..task() };
        assert_eq!(
            refusal(&shapes(), zero),
            "width: fresco-shapes draws multiples of 4 (got 0)"
        );
    }

    #[test]
    fn more_images_than_the_model_batches_are_refused() {
        let nine = TaskSpec {
            n: 9,
            sampler: "flow_euler".into(),
            ..task()
        };
        assert_eq!(
            refusal(&flux(), nine),
            "n: acme/flux renders at most 8 images per task (got 9)"
        );
        let many = TaskSpec { n: 16, ..task() };
        assert_eq!(shapes().admit(&many), Ok(()), "no limit of its own");
    }

    #[test]
    fn samplers_the_model_does_not_run_are_refused() {
        let ddim = TaskSpec {
            sampler: "ddim".into(),
            ..task()
        };
        assert_eq!(
            refusal(&shapes(), ddim),
            "sampler: fresco-shapes runs euler, heun (got ddim)"
        );
        assert_eq!(
            refusal(&flux(), task()),
            "sampler: acme/flux runs flow_euler (got euler)"
        );
    }

    #[test]
    fn beta_schedule_knobs_are_refused_by_flow_models_only() {
        let knobs = TaskSpec {
            schedule: Schedule {
                eta: Some(0.5),
                beta_start: Some(0.001),
                flow_shift: Some(2.0),
                ..Schedule::default()
            },
            ..task()
        };
        assert_eq!(
            refusal(&shapes(), knobs.clone()),
            "schedule: fresco-shapes is a flow-matching model and reads only flow_shift \
             of the schedule knobs (got beta_start, eta)"
        );
        let sd = ModelCapabilities::of_family("acme/sd", Family::StableDiffusion, 8, None, None);
        assert!(sd.beta_schedule_knobs);
        assert_eq!(sd.admit(&knobs), Ok(()));
    }

    #[test]
    fn negative_prompts_are_refused_where_they_change_nothing() {
        let negative = TaskSpec {
            negative_prompt: "blurry".into(),
            sampler: "flow_euler".into(),
            ..task()
        };
        assert_eq!(
            refusal(&flux(), negative.clone()),
            "negative_prompt: acme/flux ignores negative prompts (got \"blurry\")"
        );
        let long = TaskSpec {
            negative_prompt: "x".repeat(100),
            ..negative
        };
        assert_eq!(
            refusal(&flux(), long),
            format!(
                "negative_prompt: acme/flux ignores negative prompts (got \"{}\"...)",
                "x".repeat(40)
            )
        );
    }

    #[test]
    fn the_first_broken_rule_is_named_in_field_order() {
        let everything = TaskSpec {
            width: 40,
            n: 99,
            sampler: "ddim".into(),
            negative_prompt: "no".into(),
            ..task()
        };
        assert!(refusal(&flux(), everything).starts_with("width: "));
    }

    #[test]
    fn every_builtin_model_has_capabilities_and_nothing_else_does() {
        let noop = builtin_capabilities(NOOP).expect("built in");
        assert_eq!(noop.family, Family::Noop);
        assert_eq!(noop.samplers, crate::capabilities::all_samplers());
        assert_eq!(
            noop.max_side,
            Some(crate::params::Limits::default().max_side)
        );
        assert_eq!(
            noop.side_multiple,
            crate::params::Limits::default().side_multiple
        );
        assert!(noop.beta_schedule_knobs && noop.negative_prompt && noop.max_images.is_none());
        for model in DIT_BUILTIN_MODELS {
            let caps = builtin_capabilities(model).expect("built in");
            assert_eq!(caps.model, *model);
            assert_eq!(caps.family, Family::Dit);
            assert_eq!(caps.samplers, ["euler", "heun"]);
            assert!(!caps.beta_schedule_knobs && caps.negative_prompt);
        }
        assert!(
            BUILTIN_MODELS
                .iter()
                .all(|m| builtin_capabilities(m).is_some())
        );
        assert_eq!(builtin_capabilities("acme/sd"), None);
    }

    #[test]
    fn the_stored_json_round_trips() {
        let caps = flux();
        let json = serde_json::to_value(&caps).unwrap();
        assert_eq!(json["family"], "flux");
        assert_eq!(json["max_side"], serde_json::Value::Null);
        let back: ModelCapabilities = serde_json::from_value(json).unwrap();
        assert_eq!(back, caps);
    }

    #[cfg(feature = "grpc")]
    #[test]
    fn the_wire_form_round_trips_and_bad_messages_name_their_field() {
        for caps in [shapes(), flux()] {
            assert_eq!(ModelCapabilities::from_proto(&caps.to_proto()), Ok(caps));
        }
        let wire = flux().to_proto();
        assert_eq!((wire.max_side, wire.max_images), (0, 8));
        let field = |p: fresco_proto::v1::ModelCapabilities| {
            ModelCapabilities::from_proto(&p).unwrap_err().field
        };
        let mut bad = wire.clone();
        bad.family = "unet".into();
        assert_eq!(field(bad), "family");
        let mut bad = wire.clone();
        bad.side_multiple = 0;
        assert_eq!(field(bad), "side_multiple");
        let mut bad = wire.clone();
        bad.samplers.clear();
        assert_eq!(field(bad), "samplers");
        let mut bad = wire;
        bad.model = "../x".into();
        assert_eq!(field(bad), "model");
    }
}
