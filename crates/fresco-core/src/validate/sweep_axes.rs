//! A request's `sweep`: every axis value checked alone under
//! `sweep.<axis>[i]` by the rules of ordinary task fields, the product held
//! to the task limit per job, and the job's tasks made in expansion order
//! (see [`crate::sweep`]) with the job defaults for every axis not varied.

use fresco_proto::v1::{self as pb, TaskParams};

use super::{check_params, resolve_checked};
use crate::error::FieldError;
use crate::params::{Limits, ModelDefaults, TaskSpec};
use crate::sweep::{Point, Sweep};

/// The checked axes of `request` and the tasks they make, task `i` at
/// `sweep.coordinates(i)`.
pub(super) fn expand(
    request: &pb::Sweep,
    defaults: &TaskParams,
    fallback: &ModelDefaults,
    limits: &Limits,
    next_seed: &mut dyn FnMut() -> u64,
) -> Result<(Sweep, Vec<TaskSpec>), FieldError> {
    let sweep = Sweep::from_proto(request);
    let count = task_count(&sweep, limits)?;
    check_axes(&sweep, defaults, limits)?;
    let tasks = (0..count)
        .map(|index| {
            let params = point_params(sweep.point(&sweep.coordinates(index)));
            resolve_checked(&params, defaults, fallback, next_seed).map_err(|e| e.under("sweep"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((sweep, tasks))
}

/// How many tasks `sweep` makes, once it varies something and stays within
/// the task limit per job.
fn task_count(sweep: &Sweep, limits: &Limits) -> Result<u64, FieldError> {
    if sweep.is_empty() {
        return Err(FieldError::new(
            "sweep",
            "must vary at least one axis: prompts, seeds, guidance, steps, samplers or sizes",
        ));
    }
    match sweep.task_count() {
        Some(count) if count <= limits.max_tasks as u64 => Ok(count),
        count => Err(FieldError::new(
            "sweep",
            format!(
                "makes {} tasks ({}), more than the limit of {} tasks per job",
                count.map_or_else(|| "over 2^64".to_owned(), |n| n.to_string()),
                sweep.describe(),
                limits.max_tasks
            ),
        )),
    }
}

/// Checks every value of every axis; a job with no prompt axis needs a
/// default prompt.
fn check_axes(sweep: &Sweep, defaults: &TaskParams, limits: &Limits) -> Result<(), FieldError> {
    for (i, entry) in sweep.prompts.iter().enumerate() {
        let at = format!("sweep.prompts[{i}]");
        if entry.prompt.trim().is_empty() {
            return Err(FieldError::new(format!("{at}.prompt"), "must not be empty"));
        }
        let params = TaskParams {
            prompt: Some(entry.prompt.clone()),
            negative_prompt: entry.negative_prompt.clone(),
            ..TaskParams::default()
        };
        check_params(&params, limits).map_err(|e| e.under(&at))?;
    }
    let default_prompt = defaults.prompt.as_deref().unwrap_or_default();
    if sweep.prompts.is_empty() && default_prompt.trim().is_empty() {
        return Err(FieldError::new(
            "sweep.prompts",
            "must hold at least one prompt when defaults.prompt is unset",
        ));
    }
    // Seeds: every u64 is a seed.
    scalar_axis("guidance", &sweep.guidance, limits, |&guidance| {
        TaskParams {
            guidance: Some(guidance),
            ..TaskParams::default()
        }
    })?;
    scalar_axis("steps", &sweep.steps, limits, |&steps| TaskParams {
        steps: Some(steps),
        ..TaskParams::default()
    })?;
    scalar_axis("samplers", &sweep.samplers, limits, |sampler| TaskParams {
        sampler: Some(sampler.clone()),
        ..TaskParams::default()
    })?;
    for (i, size) in sweep.sizes.iter().enumerate() {
        let params = TaskParams {
            width: Some(size.width),
            height: Some(size.height),
            ..TaskParams::default()
        };
        check_params(&params, limits).map_err(|e| e.under(&format!("sweep.sizes[{i}]")))?;
    }
    Ok(())
}

/// Checks each value of a one-field axis as that field of a task; an error
/// names the value, `sweep.<field>[i]`.
fn scalar_axis<T>(
    field: &str,
    values: &[T],
    limits: &Limits,
    params: impl Fn(&T) -> TaskParams,
) -> Result<(), FieldError> {
    for (i, value) in values.iter().enumerate() {
        check_params(&params(value), limits)
            .map_err(|e| FieldError::new(format!("sweep.{field}[{i}]"), e.rule))?;
    }
    Ok(())
}

/// One task's parameters as the sweep sets them; the rest stay unset, for
/// the job defaults to fill.
fn point_params(point: Point<'_>) -> TaskParams {
    TaskParams {
        prompt: point.prompt.map(|p| p.prompt.clone()),
        negative_prompt: point.prompt.and_then(|p| p.negative_prompt.clone()),
        seed: point.seed,
        steps: point.steps,
        width: point.size.map(|s| s.width),
        height: point.size.map(|s| s.height),
        guidance: point.guidance,
        n: None,
        sampler: point.sampler.map(str::to_owned),
        schedule: None,
    }
}
