//! A task's sampler schedule knobs ([`Schedule`]): the fields of diffusers'
//! scheduler configs that users set per run. Checking them, merging a task's
//! knobs over its job's, and converting from and to the wire form.

#[cfg(feature = "grpc")]
use fresco_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// Beta schedules a task may ask for.
pub const BETA_SCHEDULES: &[&str] = &["linear", "scaled_linear", "squaredcos_cap_v2"];
/// Prediction types a task may ask for.
pub const PREDICTION_TYPES: &[&str] = &["epsilon", "v_prediction", "sample"];
/// Timestep spacings a task may ask for.
pub const TIMESTEP_SPACINGS: &[&str] = &["leading", "trailing", "linspace"];
/// Largest `num_train_timesteps`.
pub const MAX_TRAIN_TIMESTEPS: u32 = 10_000;
/// Largest flow-matching shift.
pub const MAX_FLOW_SHIFT: f64 = 100.0;

/// Schedule overrides: every unset field keeps the model's own value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Schedule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_train_timesteps: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta_start: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta_end: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta_schedule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prediction_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestep_spacing: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub karras_sigmas: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_shift: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta: Option<f64>,
}

impl Schedule {
    /// Whether no knob is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `self`'s knobs, each unset one taken from `fallback`.
    pub fn or(self, fallback: &Schedule) -> Schedule {
        Schedule {
            num_train_timesteps: self.num_train_timesteps.or(fallback.num_train_timesteps),
            beta_start: self.beta_start.or(fallback.beta_start),
            beta_end: self.beta_end.or(fallback.beta_end),
            beta_schedule: self
                .beta_schedule
                .or_else(|| fallback.beta_schedule.clone()),
            prediction_type: self
                .prediction_type
                .or_else(|| fallback.prediction_type.clone()),
            timestep_spacing: self
                .timestep_spacing
                .or_else(|| fallback.timestep_spacing.clone()),
            karras_sigmas: self.karras_sigmas.or(fallback.karras_sigmas),
            flow_shift: self.flow_shift.or(fallback.flow_shift),
            eta: self.eta.or(fallback.eta),
        }
    }

    /// Checks every set knob; errors name the field under `schedule.`.
    pub fn check(&self) -> Result<(), FieldError> {
        self.check_fields()
            .map_err(|(field, rule)| FieldError::new(format!("schedule.{field}"), rule))
    }

    fn check_fields(&self) -> Result<(), (&'static str, String)> {
        if let Some(n) = self.num_train_timesteps
            && !(1..=MAX_TRAIN_TIMESTEPS).contains(&n)
        {
            return Err((
                "num_train_timesteps",
                format!("must be between 1 and {MAX_TRAIN_TIMESTEPS} (got {n})"),
            ));
        }
        for (field, value) in [("beta_start", self.beta_start), ("beta_end", self.beta_end)] {
            if let Some(v) = value
                && !(v > 0.0 && v < 1.0)
            {
                return Err((
                    field,
                    format!("must be between 0 and 1, exclusive (got {v})"),
                ));
            }
        }
        if let (Some(start), Some(end)) = (self.beta_start, self.beta_end)
            && start >= end
        {
            return Err((
                "beta_end",
                format!("must be greater than beta_start ({end} <= {start})"),
            ));
        }
        for (field, value, known) in [
            ("beta_schedule", &self.beta_schedule, BETA_SCHEDULES),
            ("prediction_type", &self.prediction_type, PREDICTION_TYPES),
            (
                "timestep_spacing",
                &self.timestep_spacing,
                TIMESTEP_SPACINGS,
            ),
        ] {
            if let Some(v) = value
                && !known.contains(&v.as_str())
            {
                return Err((
                    field,
                    format!("unknown value {v:?}; known: {}", known.join(", ")),
                ));
            }
        }
        if let Some(shift) = self.flow_shift
            && !(shift > 0.0 && shift <= MAX_FLOW_SHIFT)
        {
            return Err((
                "flow_shift",
                format!("must be above 0 and at most {MAX_FLOW_SHIFT} (got {shift})"),
            ));
        }
        if let Some(eta) = self.eta
            && !(0.0..=1.0).contains(&eta)
        {
            return Err(("eta", format!("must be between 0 and 1 (got {eta})")));
        }
        Ok(())
    }

    /// The knobs of a request (absent message: none set).
    #[cfg(feature = "grpc")]
    pub fn from_proto(p: Option<&pb::Schedule>) -> Schedule {
        let Some(p) = p else {
            return Schedule::default();
        };
        Schedule {
            num_train_timesteps: p.num_train_timesteps,
            beta_start: p.beta_start,
            beta_end: p.beta_end,
            beta_schedule: p.beta_schedule.clone(),
            prediction_type: p.prediction_type.clone(),
            timestep_spacing: p.timestep_spacing.clone(),
            karras_sigmas: p.karras_sigmas,
            flow_shift: p.flow_shift,
            eta: p.eta,
        }
    }

    /// The wire form; `None` when no knob is set.
    #[cfg(feature = "grpc")]
    pub fn to_proto(&self) -> Option<pb::Schedule> {
        (!self.is_empty()).then(|| pb::Schedule {
            num_train_timesteps: self.num_train_timesteps,
            beta_start: self.beta_start,
            beta_end: self.beta_end,
            beta_schedule: self.beta_schedule.clone(),
            prediction_type: self.prediction_type.clone(),
            timestep_spacing: self.timestep_spacing.clone(),
            karras_sigmas: self.karras_sigmas,
            flow_shift: self.flow_shift,
            eta: self.eta,
        })
    }

    /// The stored form: a JSON object of the set knobs (`{}` for none).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Reads [`Self::to_json`]'s output.
    pub fn from_json(text: &str) -> Result<Schedule, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_of(s: Schedule) -> FieldError {
        s.check().unwrap_err()
    }

    #[test]
    fn each_knob_is_checked_and_named() {
        let bad = [
            (
                Schedule {
                    num_train_timesteps: Some(0),
                    ..Default::default()
                },
                "schedule.num_train_timesteps",
            ),
            (
                Schedule {
                    beta_start: Some(1.5),
                    ..Default::default()
                },
                "schedule.beta_start",
            ),
            (
                Schedule {
                    beta_start: Some(0.02),
                    beta_end: Some(0.01),
                    ..Default::default()
                },
                "schedule.beta_end",
            ),
            (
                Schedule {
                    beta_schedule: Some("cosine".into()),
                    ..Default::default()
                },
                "schedule.beta_schedule",
            ),
            (
                Schedule {
                    prediction_type: Some("noise".into()),
                    ..Default::default()
                },
                "schedule.prediction_type",
            ),
            (
                Schedule {
                    timestep_spacing: Some("random".into()),
                    ..Default::default()
                },
                "schedule.timestep_spacing",
            ),
            (
                Schedule {
                    flow_shift: Some(f64::NAN),
                    ..Default::default()
                },
                "schedule.flow_shift",
            ),
            (
                Schedule {
                    eta: Some(-0.1),
                    ..Default::default()
                },
                "schedule.eta",
            ),
        ];
        for (schedule, field) in bad {
            assert_eq!(rule_of(schedule).field, field);
        }
        let good = Schedule {
            num_train_timesteps: Some(1000),
            beta_start: Some(0.00085),
            beta_end: Some(0.012),
            beta_schedule: Some("scaled_linear".into()),
            prediction_type: Some("v_prediction".into()),
            timestep_spacing: Some("trailing".into()),
            karras_sigmas: Some(true),
            flow_shift: Some(3.0),
            eta: Some(0.5),
        };
        good.check().unwrap();
        #[cfg(feature = "grpc")]
        assert_eq!(Schedule::from_proto(good.to_proto().as_ref()), good);
        assert_eq!(Schedule::from_json(&good.to_json()).unwrap(), good);
    }

    #[test]
    fn task_knobs_override_job_knobs_one_by_one() {
        let job = Schedule {
            eta: Some(0.3),
            flow_shift: Some(2.0),
            ..Default::default()
        };
        let task = Schedule {
            eta: Some(1.0),
            ..Default::default()
        };
        let merged = task.or(&job);
        assert_eq!((merged.eta, merged.flow_shift), (Some(1.0), Some(2.0)));
        assert_eq!(Schedule::default().to_json(), "{}");
        #[cfg(feature = "grpc")]
        assert!(Schedule::default().to_proto().is_none());
    }
}
