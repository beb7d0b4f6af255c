//! Why a job's queued tasks are not running: paused, no live worker serves
//! its model, every worker serving it is quarantined, every queued task
//! waits out a retry backoff, or its tenant is at a quota ([`quota_reason`]). [`reason`] decides from what the store read
//! (a pure function); [`job_messages`] reads it and builds the API
//! messages, so every read of a job explains itself at once.

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};
use fresco_core::TaskState;
use fresco_proto::v1 as pb;
use fresco_store::{JobSummary, ModelWorkers, TenantUsage};

use crate::error::ApiResult;
use crate::{Coordinator, convert};

/// Why `job`'s queued tasks cannot run at `now`, given the registered
/// workers serving its model (`None`: no worker ever did); empty when it
/// has no queued task or nothing holds them back but busy workers. The
/// first that applies: paused, the model's workers
/// ([`model_reason`]), every queued task in retry backoff.
pub fn reason(job: &JobSummary, workers: Option<&ModelWorkers>, now: DateTime<Utc>) -> String {
    if job.counts.get(TaskState::Queued) == 0 {
        return String::new();
    }
    if job.paused {
        return "paused".into();
    }
    if let Some(why) = model_reason(&job.model, workers, now) {
        return why;
    }
    match job.retry_at {
        Some(at) if job.queued_ready == 0 => format!(
            "waiting for retry backoff until {}",
            at.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        _ => String::new(),
    }
}

/// Why no worker will take a task of `model` now, if none will: no worker
/// ever registered it, none of those that did is live (seen within two
/// leases), or every live one is quarantined. A built-in model is served
/// only by the live workers registering it, like any other.
pub fn model_reason(
    model: &str,
    workers: Option<&ModelWorkers>,
    now: DateTime<Utc>,
) -> Option<String> {
    match workers {
        None => Some(format!("no worker has ever served model {model}")),
        Some(w) if w.live == 0 => Some(format!(
            "no live worker serves model {model} (last seen {} ago)",
            ago(now - w.last_seen_at)
        )),
        Some(w) if w.available == 0 => Some(format!("every worker serving {model} is quarantined")),
        Some(_) => None,
    }
}

/// A span of time the way a person says it: "40 s", "14 min", "3 h",
/// "2 days" (rounded down; a negative span is "0 s").
fn ago(span: chrono::Duration) -> String {
    let secs = span.num_seconds().max(0);
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 48 * 3600 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// The registered workers serving `models`, read once.
async fn workers_of(app: &Coordinator, models: &[String]) -> ApiResult<Vec<ModelWorkers>> {
    if models.is_empty() {
        return Ok(Vec::new());
    }
    Ok(app.store.model_workers(models, app.settings.lease).await?)
}

/// Why a tenant's queued tasks wait on its quotas, if they do: it has
/// spent today's device time, or runs as many tasks as its limit allows.
pub fn quota_reason(usage: &TenantUsage) -> Option<String> {
    let limits = &usage.limits;
    let tenant = &usage.tenant;
    if let Some(max) = limits.max_device_seconds_per_day
        && usage.device_ms_today >= max.saturating_mul(1_000)
    {
        return Some(format!(
            "tenant {tenant} has spent its {max} device-seconds for today (UTC)"
        ));
    }
    match limits.max_running_tasks {
        Some(max) if usage.running_tasks >= max => Some(format!(
            "tenant {tenant} runs {} tasks, its limit (max_running_tasks {max})",
            usage.running_tasks
        )),
        _ => None,
    }
}

/// The usage of every tenant of `jobs` with queued tasks whose running or
/// device-time limit could hold them (read only for tenants with one).
async fn held_tenants(app: &Coordinator, jobs: &[&JobSummary]) -> ApiResult<Vec<TenantUsage>> {
    let waiting: BTreeSet<&str> = jobs.iter().map(|j| j.tenant.as_str()).collect();
    if waiting.is_empty() {
        return Ok(Vec::new());
    }
    let mut usages = Vec::new();
    for tenant in app.store.list_tenants().await? {
        let limited = tenant.limits.max_running_tasks.is_some()
            || tenant.limits.max_device_seconds_per_day.is_some();
        if limited && waiting.contains(tenant.name.as_str()) {
            usages.push(app.store.tenant_usage(&tenant.name).await?);
        }
    }
    Ok(usages)
}

/// The API messages of `jobs`, each with its waiting reason.
pub async fn job_messages(app: &Coordinator, jobs: &[JobSummary]) -> ApiResult<Vec<pb::Job>> {
    let waiting: Vec<&JobSummary> = jobs
        .iter()
        .filter(|j| j.counts.get(TaskState::Queued) > 0 && !j.paused)
        .collect();
    let models: Vec<String> = waiting
        .iter()
        .map(|j| j.model.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let workers = workers_of(app, &models).await?;
    let held = held_tenants(app, &waiting).await?;
    let now = Utc::now();
    Ok(jobs
        .iter()
        .map(|job| {
            let served = workers.iter().find(|w| w.model == job.model);
            let mut why = reason(job, served, now);
            if why.is_empty() && job.counts.get(TaskState::Queued) > 0 {
                let usage = held.iter().find(|u| u.tenant == job.tenant);
                why = usage.and_then(quota_reason).unwrap_or_default();
            }
            convert::job(job, why)
        })
        .collect())
}

/// The API message of `job`, with its waiting reason.
pub async fn job_message(app: &Coordinator, job: &JobSummary) -> ApiResult<pb::Job> {
    let mut messages = job_messages(app, std::slice::from_ref(job)).await?;
    Ok(messages
        .pop()
        .unwrap_or_else(|| convert::job(job, String::new())))
}

/// What a submission of `model` is warned of: why no worker will take its
/// tasks now, if none will (the waiting reason its job shows).
pub async fn submit_warnings(app: &Coordinator, model: &str) -> ApiResult<Vec<String>> {
    let workers = workers_of(app, &[model.to_owned()]).await?;
    Ok(model_reason(model, workers.first(), Utc::now())
        .into_iter()
        .collect())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::TimeZone;
    use fresco_core::JobId;
    use fresco_store::StateCounts;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap()
    }

    fn job(queued: u64, running: u64) -> JobSummary {
        JobSummary {
            id: JobId::new(),
            name: String::new(),
            owner: String::new(),
            tenant: String::new(),
            model: "sd-x".into(),
            priority: 0,
            max_attempts: 3,
            task_count: queued + running,
            created_at: now(),
            paused: false,
            counts: StateCounts(HashMap::from([
                (TaskState::Queued, queued),
                (TaskState::Running, running),
            ])),
            running_steps: (0, 0),
            deadline: None,
            queued_ready: queued,
            retry_at: None,
            sweep: None,
            labels: Default::default(),
            rate: Default::default(),
        }
    }

    fn workers(live: u32, available: u32, seen_secs_ago: i64) -> ModelWorkers {
        ModelWorkers {
            model: "sd-x".into(),
            live,
            available,
            last_seen_at: now() - chrono::Duration::seconds(seen_secs_ago),
        }
    }

    #[test]
    fn a_job_with_nothing_queued_waits_for_nothing() {
        let mut done = job(0, 2);
        done.paused = true;
        assert_eq!(reason(&done, None, now()), "");
    }

    #[test]
    fn a_paused_job_says_so_first() {
        let mut paused = job(3, 0);
        paused.paused = true;
        assert_eq!(reason(&paused, None, now()), "paused");
    }

    #[test]
    fn a_model_no_worker_ever_registered() {
        assert_eq!(
            reason(&job(1, 0), None, now()),
            "no worker has ever served model sd-x"
        );
    }

    #[test]
    fn a_model_whose_workers_are_gone_says_when_one_was_seen() {
        for (secs, seen) in [
            (40, "40 s"),
            (14 * 60 + 59, "14 min"),
            (5 * 3600, "5 h"),
            (3 * 86_400, "3 days"),
        ] {
            assert_eq!(
                reason(&job(1, 0), Some(&workers(0, 0, secs)), now()),
                format!("no live worker serves model sd-x (last seen {seen} ago)")
            );
        }
    }

    #[test]
    fn a_model_whose_live_workers_are_all_quarantined() {
        assert_eq!(
            reason(&job(1, 0), Some(&workers(2, 0, 1)), now()),
            "every worker serving sd-x is quarantined"
        );
        assert_eq!(reason(&job(1, 0), Some(&workers(2, 1, 1)), now()), "");
    }

    #[test]
    fn every_queued_task_in_backoff_names_the_first_retry() {
        let mut backing_off = job(2, 0);
        backing_off.queued_ready = 0;
        backing_off.retry_at = Some(now() + chrono::Duration::milliseconds(90_500));
        assert_eq!(
            reason(&backing_off, Some(&workers(1, 1, 0)), now()),
            "waiting for retry backoff until 2026-12-07T10:01:30Z"
        );
        let mut one_ready = backing_off.clone();
        one_ready.queued_ready = 1;
        assert_eq!(
            reason(&one_ready, Some(&workers(1, 1, 0)), now()),
            "",
            "a task that may run now waits only for a free worker"
        );
    }

    #[test]
    fn a_tenant_at_a_quota_says_which() {
        let mut usage = TenantUsage {
            tenant: "acme".into(),
            limits: fresco_store::TenantLimits {
                max_running_tasks: Some(2),
                max_device_seconds_per_day: Some(60),
                ..Default::default()
            },
            queued_tasks: 5,
            running_tasks: 1,
            device_ms_today: 59_999,
            device_ms_total: 59_999,
            attempts_today: 3,
            attempts_total: 3,
        };
        assert_eq!(quota_reason(&usage), None);
        usage.running_tasks = 2;
        assert_eq!(
            quota_reason(&usage).as_deref(),
            Some("tenant acme runs 2 tasks, its limit (max_running_tasks 2)")
        );
        usage.device_ms_today = 60_000;
        assert_eq!(
            quota_reason(&usage).as_deref(),
            Some("tenant acme has spent its 60 device-seconds for today (UTC)")
        );
    }

    #[test]
    fn the_submit_warning_is_the_model_reason() {
        assert_eq!(model_reason("sd-x", Some(&workers(1, 1, 0)), now()), None);
        assert_eq!(
            model_reason("sd-x", Some(&workers(0, 0, 120)), now()).as_deref(),
            Some("no live worker serves model sd-x (last seen 2 min ago)")
        );
    }
}
