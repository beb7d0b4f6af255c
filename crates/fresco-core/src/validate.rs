//! Checks a `SubmitJobRequest` field by field and resolves every task's
//! parameters (task value, else job default, else the model's default, else
//! fresco's default). A request that names no model gets [`DEFAULT_MODEL`].
//!
//! Every rule reports the field's path and the rule; nothing is stored
//! unless the whole request passes. A request with a `sweep` has its tasks
//! made from the sweep's axes ([`sweep_axes`]) instead of listed.

use fresco_proto::v1::{SubmitJobRequest, TaskParams};

use crate::capabilities::all_samplers;
use crate::error::FieldError;
use crate::params::{
    DEFAULT_MODEL, JobSpec, Limits, ModelDefaults, Schedule, TaskSpec, defaults, model_defaults,
};

mod sweep_axes;

/// Validates a submission. `is_known_model` says whether a model id can be
/// served; `next_seed` draws a seed for tasks that name none, so every stored
/// task is reproducible.
pub fn job_spec(
    request: &SubmitJobRequest,
    limits: &Limits,
    is_known_model: &dyn Fn(&str) -> bool,
    next_seed: &mut dyn FnMut() -> u64,
) -> Result<JobSpec, FieldError> {
    let model = if request.model.is_empty() {
        DEFAULT_MODEL.to_owned()
    } else {
        model_id(&request.model)?
    };
    if !is_known_model(&model) {
        return Err(FieldError::new(
            "model",
            format!("unknown model {model:?}: no worker serves it and it is not built in"),
        ));
    }
    let name = short_text("name", &request.name, limits.max_name_chars)?;
    let owner = short_text("owner", &request.owner, limits.max_name_chars)?;
    if request.priority.abs() > limits.max_priority {
        return Err(FieldError::new(
            "priority",
            format!(
                "must be between -{max} and {max} (got {})",
                request.priority,
                max = limits.max_priority
            ),
        ));
    }
    let request_id = request_id(&request.request_id)?;
    let max_attempts = match request.max_attempts {
        0 => defaults::MAX_ATTEMPTS,
        n if n > limits.max_attempts => {
            return Err(FieldError::new(
                "max_attempts",
                format!("must be at most {} (got {n})", limits.max_attempts),
            ));
        }
        n => n,
    };
    if request.sweep.is_some() && !request.tasks.is_empty() {
        return Err(FieldError::new(
            "sweep",
            "must not be set together with tasks: a sweep makes the job's tasks",
        ));
    }
    if request.sweep.is_none() {
        task_list_size(request.tasks.len(), limits)?;
    }
    let job_defaults = request.defaults.clone().unwrap_or_default();
    check_params(&job_defaults, limits).map_err(|e| e.under("defaults"))?;
    let fallback = model_defaults(&model);
    let (tasks, sweep) = match &request.sweep {
        Some(sweep) => {
            let (sweep, tasks) =
                sweep_axes::expand(sweep, &job_defaults, &fallback, limits, next_seed)?;
            (tasks, Some(sweep))
        }
        None => {
            let tasks = request
                .tasks
                .iter()
                .enumerate()
                .map(|(i, task)| {
                    resolve(task, &job_defaults, &fallback, limits, next_seed)
                        .map_err(|e| e.under(&format!("tasks[{i}]")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            (tasks, None)
        }
    };
    Ok(JobSpec {
        request_id,
        name,
        owner,
        tenant: crate::access::DEFAULT_TENANT.to_owned(),
        model,
        priority: request.priority,
        max_attempts,
        tasks,
        deadline: deadline(request.deadline_seconds, limits)?,
        traceparent: String::new(),
        sweep,
        labels: crate::labels::check_labels("labels", &request.labels)?,
    })
}

/// A listed job's task count: at least one, at most the limit per job.
fn task_list_size(count: usize, limits: &Limits) -> Result<(), FieldError> {
    if count == 0 {
        return Err(FieldError::new("tasks", "must hold at least one task"));
    }
    if count > limits.max_tasks {
        return Err(FieldError::new(
            "tasks",
            format!("must hold at most {} tasks (got {count})", limits.max_tasks),
        ));
    }
    Ok(())
}

/// `deadline_seconds`: 0 for none, else at most the limit.
fn deadline(seconds: u64, limits: &Limits) -> Result<Option<std::time::Duration>, FieldError> {
    match seconds {
        0 => Ok(None),
        n if n > limits.max_deadline_seconds => Err(FieldError::new(
            "deadline_seconds",
            format!(
                "must be at most {} seconds, 0 for no deadline (got {n})",
                limits.max_deadline_seconds
            ),
        )),
        n => Ok(Some(std::time::Duration::from_secs(n))),
    }
}

/// A model id: 1–200 characters of `[A-Za-z0-9._/-]`, not starting with `.` or `/`.
pub fn model_id(value: &str) -> Result<String, FieldError> {
    if value.is_empty() {
        return Err(FieldError::new("model", "must not be empty"));
    }
    if value.len() > 200 {
        return Err(FieldError::new("model", "must be at most 200 characters"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/');
    if !value.chars().all(allowed) || value.starts_with(['.', '/']) || value.contains("..") {
        return Err(FieldError::new(
            "model",
            format!("must be letters, digits, '.', '_', '-' or '/' (got {value:?})"),
        ));
    }
    Ok(value.to_owned())
}

/// An idempotency key: empty for none, else 1-100 of `[A-Za-z0-9._:-]`.
fn request_id(value: &str) -> Result<Option<String>, FieldError> {
    if value.is_empty() {
        return Ok(None);
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    if value.len() > 100 || !value.chars().all(allowed) {
        return Err(FieldError::new(
            "request_id",
            "must be 1-100 letters, digits, '.', '_', ':' or '-'",
        ));
    }
    Ok(Some(value.to_owned()))
}

fn short_text(field: &str, value: &str, max_chars: usize) -> Result<String, FieldError> {
    if value.chars().count() > max_chars {
        return Err(FieldError::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    no_control_chars(field, value)?;
    Ok(value.to_owned())
}

fn no_control_chars(field: &str, value: &str) -> Result<(), FieldError> {
    match value
        .chars()
        .find(|c| c.is_control() && *c != '\n' && *c != '\t')
    {
        Some(c) => Err(FieldError::new(
            field,
            format!(
                "must not contain control characters (found U+{:04X})",
                c as u32
            ),
        )),
        None => Ok(()),
    }
}

fn prompt_text(field: &str, value: &str, limits: &Limits) -> Result<(), FieldError> {
    let chars = value.chars().count();
    if chars > limits.max_prompt_chars {
        return Err(FieldError::new(
            field,
            format!(
                "must be at most {} characters (got {chars})",
                limits.max_prompt_chars
            ),
        ));
    }
    no_control_chars(field, value)
}

fn in_range(field: &str, value: u32, min: u32, max: u32) -> Result<(), FieldError> {
    if value < min || value > max {
        return Err(FieldError::new(
            field,
            format!("must be between {min} and {max} (got {value})"),
        ));
    }
    Ok(())
}

fn side(field: &str, value: u32, limits: &Limits) -> Result<(), FieldError> {
    if value == 0 || !value.is_multiple_of(limits.side_multiple) {
        return Err(FieldError::new(
            field,
            format!(
                "must be a positive multiple of {} (got {value})",
                limits.side_multiple
            ),
        ));
    }
    if value > limits.max_side {
        return Err(FieldError::new(
            field,
            format!("must be at most {} (got {value})", limits.max_side),
        ));
    }
    Ok(())
}

/// Checks every field that is set, without resolving defaults.
fn check_params(p: &TaskParams, limits: &Limits) -> Result<(), FieldError> {
    if let Some(prompt) = &p.prompt {
        prompt_text("prompt", prompt, limits)?;
    }
    if let Some(negative) = &p.negative_prompt {
        prompt_text("negative_prompt", negative, limits)?;
    }
    if let Some(steps) = p.steps {
        in_range("steps", steps, 1, limits.max_steps)?;
    }
    if let Some(n) = p.n {
        in_range("n", n, 1, limits.max_n)?;
    }
    if let Some(width) = p.width {
        side("width", width, limits)?;
    }
    if let Some(height) = p.height {
        side("height", height, limits)?;
    }
    if let Some(guidance) = p.guidance {
        if !guidance.is_finite() {
            return Err(FieldError::new(
                "guidance",
                format!("must be finite (got {guidance})"),
            ));
        }
        if !(0.0..=limits.max_guidance).contains(&guidance) {
            return Err(FieldError::new(
                "guidance",
                format!(
                    "must be between 0 and {} (got {guidance})",
                    limits.max_guidance
                ),
            ));
        }
    }
    Schedule::from_proto(p.schedule.as_ref()).check()?;
    if let Some(sampler) = &p.sampler
        && !all_samplers().contains(&sampler.as_str())
    {
        return Err(FieldError::new(
            "sampler",
            format!(
                "unknown sampler {sampler:?}; known: {}",
                all_samplers().join(", ")
            ),
        ));
    }
    Ok(())
}

fn resolve(
    task: &TaskParams,
    job: &TaskParams,
    fallback: &ModelDefaults,
    limits: &Limits,
    next_seed: &mut dyn FnMut() -> u64,
) -> Result<TaskSpec, FieldError> {
    check_params(task, limits)?;
    resolve_checked(task, job, fallback, next_seed)
}

/// [`resolve`] for a task whose own fields are checked already.
fn resolve_checked(
    task: &TaskParams,
    job: &TaskParams,
    fallback: &ModelDefaults,
    next_seed: &mut dyn FnMut() -> u64,
) -> Result<TaskSpec, FieldError> {
    let pick = |task: &Option<String>, job: &Option<String>| task.clone().or_else(|| job.clone());
    let prompt = pick(&task.prompt, &job.prompt).unwrap_or_default();
    if prompt.trim().is_empty() {
        return Err(FieldError::new("prompt", "must not be empty"));
    }
    let schedule = Schedule::from_proto(task.schedule.as_ref())
        .or(&Schedule::from_proto(job.schedule.as_ref()));
    // Each set is valid alone; together, the betas must still be ordered.
    schedule.check()?;
    Ok(TaskSpec {
        prompt,
        negative_prompt: pick(&task.negative_prompt, &job.negative_prompt).unwrap_or_default(),
        seed: task.seed.or(job.seed).unwrap_or_else(next_seed),
        steps: task.steps.or(job.steps).unwrap_or(fallback.steps),
        width: task.width.or(job.width).unwrap_or(fallback.width),
        height: task.height.or(job.height).unwrap_or(fallback.height),
        guidance: task.guidance.or(job.guidance).unwrap_or(fallback.guidance),
        n: task.n.or(job.n).unwrap_or(defaults::N),
        sampler: pick(&task.sampler, &job.sampler).unwrap_or_else(|| defaults::SAMPLER.to_owned()),
        schedule,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(tasks: Vec<TaskParams>) -> SubmitJobRequest {
        SubmitJobRequest {
            model: "tiny-random-dit".into(),
            tasks,
            ..Default::default()
        }
    }

    fn prompt(p: &str) -> TaskParams {
        TaskParams {
            prompt: Some(p.into()),
            ..Default::default()
        }
    }

    fn check(req: &SubmitJobRequest) -> Result<JobSpec, FieldError> {
        let mut seed = 0;
        job_spec(
            req,
            &Limits::default(),
            &|m| m == "tiny-random-dit",
            &mut || {
                seed += 1;
                seed
            },
        )
    }

    fn rejects(task: TaskParams, field: &str, rule_part: &str) {
        let err = check(&request(vec![prompt("ok"), task])).unwrap_err();
        assert_eq!(err.field, format!("tasks[1].{field}"), "{err}");
        assert!(
            err.rule.contains(rule_part),
            "{err} should mention {rule_part:?}"
        );
    }

    #[test]
    fn resolves_task_then_job_then_fresco_defaults() {
        let mut req = request(vec![
            prompt("a red circle"),
            TaskParams {
                steps: Some(3),
                seed: Some(7),
                ..prompt("a blue square")
            },
        ]);
        req.defaults = Some(TaskParams {
            steps: Some(8),
            width: Some(32),
            ..Default::default()
        });
        let spec = check(&req).unwrap();
        assert_eq!(spec.max_attempts, defaults::MAX_ATTEMPTS);
        assert_eq!(spec.tasks[0].steps, 8);
        assert_eq!(spec.tasks[1].steps, 3);
        assert_eq!(spec.tasks[0].width, 32);
        assert_eq!(spec.tasks[0].height, defaults::HEIGHT);
        assert_eq!(spec.tasks[0].seed, 1, "drawn seed");
        assert_eq!(spec.tasks[1].seed, 7, "given seed");
        assert_eq!(spec.tasks[1].sampler, "euler");
    }

    #[test]
    fn every_rule_names_its_field() {
        rejects(prompt(""), "prompt", "must not be empty");
        rejects(prompt("   "), "prompt", "must not be empty");
        rejects(prompt(&"x".repeat(2001)), "prompt", "at most 2000");
        rejects(prompt("bell\u{7}"), "prompt", "control characters");
        rejects(
            TaskParams {
                negative_prompt: Some("y".repeat(5000)),
                ..prompt("a")
            },
            "negative_prompt",
            "at most",
        );
        rejects(
            TaskParams {
                steps: Some(0),
                ..prompt("a")
            },
            "steps",
            "between 1 and 200",
        );
        rejects(
            TaskParams {
                steps: Some(201),
                ..prompt("a")
            },
            "steps",
            "between 1 and 200",
        );
        rejects(
            TaskParams {
                n: Some(0),
                ..prompt("a")
            },
            "n",
            "between 1 and 16",
        );
        rejects(
            TaskParams {
                n: Some(17),
                ..prompt("a")
            },
            "n",
            "between 1 and 16",
        );
        rejects(
            TaskParams {
                width: Some(63),
                ..prompt("a")
            },
            "width",
            "multiple of 8",
        );
        rejects(
            TaskParams {
                width: Some(0),
                ..prompt("a")
            },
            "width",
            "multiple of 8",
        );
        rejects(
            TaskParams {
                height: Some(4096),
                ..prompt("a")
            },
            "height",
            "at most 2048",
        );
        rejects(
            TaskParams {
                guidance: Some(-1.0),
                ..prompt("a")
            },
            "guidance",
            "between 0 and",
        );
        rejects(
            TaskParams {
                guidance: Some(f32::NAN),
                ..prompt("a")
            },
            "guidance",
            "finite",
        );
        rejects(
            TaskParams {
                guidance: Some(f32::INFINITY),
                ..prompt("a")
            },
            "guidance",
            "finite",
        );
        rejects(
            TaskParams {
                sampler: Some("warp".into()),
                ..prompt("a")
            },
            "sampler",
            "unknown sampler",
        );
    }

    #[test]
    fn a_request_without_a_model_gets_the_default_model_and_its_sizes() {
        let mut req = request(vec![
            prompt("a"),
            TaskParams {
                width: Some(64),
                ..prompt("b")
            },
        ]);
        req.model = String::new();
        let spec = job_spec(&req, &Limits::default(), &|m| m == DEFAULT_MODEL, &mut || 1).unwrap();
        assert_eq!(spec.model, "fresco-shapes");
        let sizes: Vec<_> = spec.tasks.iter().map(|t| (t.width, t.height)).collect();
        assert_eq!(sizes, [(32, 32), (64, 32)]);
        assert_eq!(spec.tasks[0].steps, defaults::STEPS);
    }

    #[test]
    fn schedule_knobs_merge_task_over_job_and_are_checked_together() {
        let knobs = |f: fn(&mut fresco_proto::v1::Schedule)| {
            let mut s = fresco_proto::v1::Schedule::default();
            f(&mut s);
            Some(s)
        };
        let mut req = request(vec![
            TaskParams {
                schedule: knobs(|s| s.eta = Some(1.0)),
                ..prompt("a")
            },
            prompt("b"),
        ]);
        req.defaults = Some(TaskParams {
            schedule: knobs(|s| {
                s.eta = Some(0.5);
                s.beta_end = Some(0.012);
            }),
            ..Default::default()
        });
        let spec = check(&req).unwrap();
        let etas: Vec<_> = spec.tasks.iter().map(|t| t.schedule.eta).collect();
        assert_eq!(etas, [Some(1.0), Some(0.5)]);
        assert_eq!(spec.tasks[0].schedule.beta_end, Some(0.012));

        // Each part is valid alone; merged, beta_start ends above beta_end.
        req.tasks[1].schedule = knobs(|s| s.beta_start = Some(0.5));
        let err = check(&req).unwrap_err();
        assert_eq!(err.field, "tasks[1].schedule.beta_end", "{err}");

        req.tasks[1].schedule = knobs(|s| s.timestep_spacing = Some("sideways".into()));
        let err = check(&req).unwrap_err();
        assert_eq!(err.field, "tasks[1].schedule.timestep_spacing", "{err}");
    }

    #[test]
    fn job_level_rules() {
        let mut req = request(vec![prompt("a")]);
        req.model = "sd-99".into();
        assert_eq!(check(&req).unwrap_err().field, "model");
        req.model = "".into();
        assert_eq!(
            check(&req).unwrap_err().rule,
            "unknown model \"fresco-shapes\": no worker serves it and it is not built in",
            "an empty model means the default model"
        );
        req.model = "../etc/passwd".into();
        assert_eq!(check(&req).unwrap_err().field, "model");

        assert_eq!(check(&request(vec![])).unwrap_err().field, "tasks");

        let mut req = request(vec![prompt("a")]);
        req.defaults = Some(TaskParams {
            steps: Some(0),
            ..Default::default()
        });
        assert_eq!(check(&req).unwrap_err().field, "defaults.steps");

        let mut req = request(vec![prompt("a")]);
        req.max_attempts = 99;
        assert_eq!(check(&req).unwrap_err().field, "max_attempts");
        req.max_attempts = 0;
        req.priority = 5000;
        assert_eq!(check(&req).unwrap_err().field, "priority");
    }

    #[test]
    fn a_deadline_is_optional_and_bounded() {
        let mut req = request(vec![prompt("a")]);
        assert_eq!(check(&req).expect("no deadline").deadline, None);
        req.deadline_seconds = 7200;
        assert_eq!(
            check(&req).expect("two hours").deadline,
            Some(std::time::Duration::from_secs(7200))
        );
        req.deadline_seconds = Limits::default().max_deadline_seconds + 1;
        let err = check(&req).unwrap_err();
        assert_eq!(err.field, "deadline_seconds");
        assert_eq!(
            err.rule,
            "must be at most 2592000 seconds, 0 for no deadline (got 2592001)"
        );
    }

    fn sweep_request(sweep: fresco_proto::v1::Sweep) -> SubmitJobRequest {
        SubmitJobRequest {
            model: "tiny-random-dit".into(),
            sweep: Some(sweep),
            ..Default::default()
        }
    }

    fn sweep_prompts(texts: &[&str]) -> Vec<fresco_proto::v1::SweepPrompt> {
        texts
            .iter()
            .map(|t| fresco_proto::v1::SweepPrompt {
                prompt: (*t).into(),
                negative_prompt: None,
            })
            .collect()
    }

    #[test]
    fn a_sweep_makes_one_task_per_combination_over_the_defaults() {
        let mut req = sweep_request(fresco_proto::v1::Sweep {
            prompts: sweep_prompts(&["a", "b"]),
            seeds: vec![7, 8, 9],
            guidance: vec![3.0, 7.5],
            ..Default::default()
        });
        req.defaults = Some(TaskParams {
            steps: Some(5),
            n: Some(2),
            negative_prompt: Some("blur".into()),
            ..Default::default()
        });
        let spec = check(&req).expect("a valid sweep");
        assert_eq!(spec.tasks.len(), 12);
        let sweep = spec.sweep.as_ref().expect("the axes are kept");
        for (i, task) in spec.tasks.iter().enumerate() {
            let at = sweep.coordinates(i as u64);
            let point = sweep.point(&at);
            assert_eq!(
                Some(task.prompt.as_str()),
                point.prompt.map(|p| p.prompt.as_str())
            );
            assert_eq!(Some(task.seed), point.seed);
            assert_eq!(Some(task.guidance), point.guidance);
            assert_eq!((task.steps, task.n), (5, 2), "from the defaults");
            assert_eq!(task.negative_prompt, "blur");
            assert_eq!(task.width, defaults::WIDTH, "fresco's default");
        }
        let firsts: Vec<_> = spec.tasks[..4]
            .iter()
            .map(|t| (t.prompt.as_str(), t.seed, t.guidance))
            .collect();
        assert_eq!(
            firsts,
            [("a", 7, 3.0), ("a", 7, 7.5), ("a", 8, 3.0), ("a", 8, 7.5)],
            "prompts outermost, guidance innermost"
        );
    }

    #[test]
    fn a_sweep_without_prompts_takes_the_default_prompt_and_draws_its_seeds() {
        let mut req = sweep_request(fresco_proto::v1::Sweep {
            sizes: vec![
                fresco_proto::v1::Size {
                    width: 32,
                    height: 64,
                },
                fresco_proto::v1::Size {
                    width: 64,
                    height: 32,
                },
            ],
            ..Default::default()
        });
        assert_eq!(
            check(&req).unwrap_err().to_string(),
            "sweep.prompts: must hold at least one prompt when defaults.prompt is unset"
        );
        req.defaults = Some(prompt("a circle"));
        let spec = check(&req).expect("a valid sweep");
        let sizes: Vec<_> = spec.tasks.iter().map(|t| (t.width, t.height)).collect();
        assert_eq!(sizes, [(32, 64), (64, 32)]);
        assert_eq!(spec.tasks[0].prompt, "a circle");
        assert_eq!((spec.tasks[0].seed, spec.tasks[1].seed), (1, 2), "drawn");
    }

    #[test]
    fn every_sweep_value_is_checked_under_its_axis() {
        let refused =
            |sweep: fresco_proto::v1::Sweep| check(&sweep_request(sweep)).unwrap_err().to_string();
        let base = || fresco_proto::v1::Sweep {
            prompts: sweep_prompts(&["a"]),
            ..Default::default()
        };
        assert_eq!(
            refused(fresco_proto::v1::Sweep {
                guidance: vec![3.0, 5.0, -1.0],
                ..base()
            }),
            "sweep.guidance[2]: must be between 0 and 50 (got -1)"
        );
        assert_eq!(
            refused(fresco_proto::v1::Sweep {
                steps: vec![0],
                ..base()
            }),
            "sweep.steps[0]: must be between 1 and 200 (got 0)"
        );
        assert!(
            refused(fresco_proto::v1::Sweep {
                samplers: vec!["euler".into(), "warp".into()],
                ..base()
            })
            .starts_with("sweep.samplers[1]: unknown sampler \"warp\"")
        );
        assert_eq!(
            refused(fresco_proto::v1::Sweep {
                sizes: vec![fresco_proto::v1::Size {
                    width: 32,
                    height: 33
                }],
                ..base()
            }),
            "sweep.sizes[0].height: must be a positive multiple of 8 (got 33)"
        );
        assert_eq!(
            refused(fresco_proto::v1::Sweep {
                prompts: sweep_prompts(&["a", " "]),
                ..Default::default()
            }),
            "sweep.prompts[1].prompt: must not be empty"
        );
        assert_eq!(
            refused(fresco_proto::v1::Sweep::default()),
            "sweep: must vary at least one axis: prompts, seeds, guidance, steps, samplers or sizes"
        );
        let mut both = sweep_request(base());
        both.tasks = vec![prompt("a")];
        assert!(
            check(&both)
                .unwrap_err()
                .to_string()
                .starts_with("sweep: must not be set together with tasks")
        );
    }

    #[test]
    fn a_sweep_past_the_task_limit_is_refused_whole() {
        let limits = Limits {
            max_tasks: 11,
            ..Limits::default()
        };
        let req = sweep_request(fresco_proto::v1::Sweep {
            prompts: sweep_prompts(&["a", "b", "c"]),
            seeds: vec![1, 2, 3, 4],
            ..Default::default()
        });
        let err = job_spec(&req, &limits, &|_| true, &mut || 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sweep: makes 12 tasks (3 prompts × 4 seeds), more than the limit of 11 tasks per job"
        );
        let overflow = sweep_request(fresco_proto::v1::Sweep {
            seeds: vec![0; 1 << 16],
            steps: vec![1; 1 << 16],
            guidance: vec![1.0; 1 << 16],
            samplers: vec!["euler".into(); 1 << 16],
            sizes: vec![
                fresco_proto::v1::Size {
                    width: 8,
                    height: 8
                };
                2
            ],
            ..Default::default()
        });
        let err = job_spec(&overflow, &limits, &|_| true, &mut || 0).unwrap_err();
        assert!(err.rule.starts_with("makes over 2^64 tasks"), "{err}");
    }

    #[test]
    fn too_many_tasks_is_refused() {
        let limits = Limits {
            max_tasks: 3,
            ..Limits::default()
        };
        let req = request(vec![prompt("a"); 4]);
        let err = job_spec(&req, &limits, &|_| true, &mut || 0).unwrap_err();
        assert_eq!(err.field, "tasks");
        assert!(err.rule.contains("at most 3"), "{err}");
    }
}
