//! Refusing at submit what no worker can run: every task of a job must be
//! admitted by at least one known capability set of its model — the
//! built-in table for a built-in model, and what every registered worker
//! (live or not) reported for it. A model with no known set (one named only
//! by `--extra-models`, or served by workers that reported none) is
//! admitted as before, and its workers' own checks stay the last line.

use fresco_core::model_capabilities::builtin_capabilities;
use fresco_core::{FieldError, JobSpec, ModelCapabilities};
use fresco_store::JobStore;

use crate::error::ApiResult;

/// Every known capability set of `model`: the registered workers' sets, the
/// most recently registered worker first, then the built-in table's.
pub async fn known_capabilities(
    store: &dyn JobStore,
    model: &str,
) -> ApiResult<Vec<ModelCapabilities>> {
    let mut known = store.model_capabilities(model).await?;
    known.extend(builtin_capabilities(model));
    Ok(known)
}

/// Checks every task of `spec` against `known` (newest first): a task that
/// no set admits is refused with the rule of the first set, as
/// `tasks[i].<field>`, or for a sweep as the request field that gave the
/// task its value (`sweep.samplers[1]`, `defaults.n`). Nothing is refused
/// when `known` is empty.
pub fn admit(spec: &JobSpec, known: &[ModelCapabilities]) -> Result<(), FieldError> {
    let Some(newest) = known.first() else {
        return Ok(());
    };
    for (i, task) in spec.tasks.iter().enumerate() {
        if known.iter().any(|caps| caps.admit(task).is_ok()) {
            continue;
        }
        newest.admit(task).map_err(|refusal| match &spec.sweep {
            Some(sweep) => FieldError::new(sweep.field_of(i as u64, &refusal.field), refusal.rule),
            None => refusal.under(&format!("tasks[{i}]")),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use fresco_core::TaskSpec;
    use fresco_core::capabilities::Family;
    use fresco_core::params::Schedule;
    use fresco_core::sweep::Sweep;

    use super::*;

    fn task(width: u32, sampler: &str) -> TaskSpec {
        TaskSpec {
            prompt: "a".into(),
            negative_prompt: String::new(),
            seed: 1,
            steps: 4,
            width,
            height: 64,
            guidance: 4.0,
            n: 1,
            sampler: sampler.into(),
            schedule: Schedule::default(),
        }
    }

    fn spec(tasks: Vec<TaskSpec>) -> JobSpec {
        JobSpec {
            request_id: None,
            name: String::new(),
            owner: String::new(),
            tenant: String::new(),
            model: "acme/sd".into(),
            priority: 0,
            max_attempts: 1,
            tasks,
            deadline: None,
            traceparent: String::new(),
            sweep: None,
            labels: Default::default(),
        }
    }

    fn sd(max_side: u32) -> ModelCapabilities {
        ModelCapabilities::of_family("acme/sd", Family::StableDiffusion, 8, Some(max_side), None)
    }

    #[test]
    fn no_known_set_admits_everything() {
        assert_eq!(admit(&spec(vec![task(4096, "warp")]), &[]), Ok(()));
    }

    #[test]
    fn the_union_of_the_sets_is_admitted() {
        let known = [sd(256), sd(1024)];
        let job = spec(vec![task(128, "ddim"), task(1024, "euler")]);
        assert_eq!(admit(&job, &known), Ok(()));
    }

    #[test]
    fn a_task_no_set_admits_is_refused_with_the_newest_sets_rule() {
        let known = [sd(256), sd(1024)];
        let job = spec(vec![task(128, "ddim"), task(2048, "ddim")]);
        assert_eq!(
            admit(&job, &known).unwrap_err().to_string(),
            "tasks[1].width: acme/sd draws at most 256 (got 2048)"
        );
    }

    #[test]
    fn a_sweep_task_no_set_admits_is_refused_on_its_axis() {
        let sweep = Sweep {
            seeds: vec![1, 2],
            samplers: vec!["ddim".into(), "flow_euler".into()],
            ..Sweep::default()
        };
        let tasks = (0..4).map(|i| task(128, &sweep.samplers[i % 2])).collect();
        let job = JobSpec {
            sweep: Some(sweep),
            ..spec(tasks)
        };
        let refusal = admit(&job, &[sd(256)]).unwrap_err();
        assert_eq!(refusal.field, "sweep.samplers[1]", "{refusal}");

        let wide = JobSpec {
            tasks: vec![task(128, "ddim"), task(512, "ddim")],
            sweep: Some(Sweep {
                seeds: vec![1, 2],
                ..Sweep::default()
            }),
            ..spec(Vec::new())
        };
        let refusal = admit(&wide, &[sd(256)]).unwrap_err();
        assert_eq!(refusal.field, "defaults.width", "{refusal}");
    }
}
