//! Error type of the crate: unknown scheduler names, configuration values that break a
//! rule (naming the field), step indices outside the schedule, and tensor errors.

/// Everything that can go wrong while building or running a scheduler.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `by_name`/`SchedulerKind::from_str` got a name that is not in [`crate::NAMES`].
    #[error("unknown scheduler `{name}` (known: {known})")]
    UnknownScheduler {
        /// The name that was asked for.
        name: String,
        /// Comma-separated list of the known names.
        known: String,
    },
    /// A configuration value (or `set_timesteps` argument) breaks a rule.
    #[error("invalid scheduler config: `{field}` {rule}")]
    InvalidConfig {
        /// The diffusers field name (or argument name) at fault.
        field: &'static str,
        /// The rule it breaks, phrased to follow the field name.
        rule: String,
    },
    /// The scheduler config JSON could not be parsed.
    #[error("scheduler config JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A step index past the end of the schedule.
    #[error("step index {index} out of range: the schedule has {len} entries")]
    StepIndexOutOfRange {
        /// The index that was passed.
        index: usize,
        /// The number of timesteps.
        len: usize,
    },
    /// A multistep/stateful scheduler was stepped out of order.
    #[error("{scheduler} must be stepped in order: expected step index {expected}, got {got}")]
    StepOutOfOrder {
        /// Scheduler name.
        scheduler: &'static str,
        /// The index the scheduler expects next.
        expected: usize,
        /// The index that was passed.
        got: usize,
    },
    /// A stochastic step was called without a random number generator.
    #[error("{scheduler} needs a random number generator for this step (pass `Some(rng)`)")]
    RngRequired {
        /// Scheduler name.
        scheduler: &'static str,
    },
    /// Tensor shapes that must agree do not.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Crate result alias.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn invalid(field: &'static str, rule: impl Into<String>) -> Error {
    Error::InvalidConfig {
        field,
        rule: rule.into(),
    }
}
