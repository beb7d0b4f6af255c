//! A tenant's limits against its use, once for both stores: each store
//! reads the facts inside the transaction that submits or claims (with the
//! tenant's row locked, or SQLite's one writer), and asks here whether the
//! write may go on. A refusal is [`StoreError::OverQuota`], naming the
//! limit and the use.

use crate::error::{Result, StoreError};
use crate::records::{QueuedTask, TenantLimits};

/// Milliseconds in a device-second.
const MS_PER_SECOND: u64 = 1_000;

/// What a submission is checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SubmitFacts {
    /// Tasks of the tenant queued now.
    pub queued: u64,
    /// Tasks this submission adds.
    pub adding: u64,
    /// Device time the tenant took today (UTC).
    pub device_ms_today: u64,
}

/// What a claim is checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClaimFacts {
    /// Tasks of the tenant running now.
    pub running: u64,
    /// Device time the tenant took today (UTC).
    pub device_ms_today: u64,
}

/// Whether `tenant` may store a submission: its queued tasks stay within
/// its limit, and today's device time is not spent.
pub(crate) fn check_submit(tenant: &str, limits: &TenantLimits, facts: SubmitFacts) -> Result<()> {
    if let Some(max) = limits.max_queued_tasks
        && facts.queued.saturating_add(facts.adding) > max
    {
        return Err(StoreError::OverQuota(format!(
            "tenant {tenant:?} may have at most {max} queued tasks (max_queued_tasks); \
             it has {} queued and this job adds {}",
            facts.queued, facts.adding
        )));
    }
    check_device_time(tenant, limits, facts.device_ms_today)
}

/// Whether a task of `tenant` may start: its running tasks are under its
/// limit, and today's device time is not spent.
pub(crate) fn check_claim(tenant: &str, limits: &TenantLimits, facts: ClaimFacts) -> Result<()> {
    if let Some(max) = limits.max_running_tasks
        && facts.running >= max
    {
        return Err(StoreError::OverQuota(format!(
            "tenant {tenant:?} may run at most {max} tasks at once (max_running_tasks); \
             {} are running",
            facts.running
        )));
    }
    check_device_time(tenant, limits, facts.device_ms_today)
}

fn check_device_time(tenant: &str, limits: &TenantLimits, device_ms_today: u64) -> Result<()> {
    let Some(max) = limits.max_device_seconds_per_day else {
        return Ok(());
    };
    if device_ms_today >= max.saturating_mul(MS_PER_SECOND) {
        return Err(StoreError::OverQuota(format!(
            "tenant {tenant:?} may use {max} device-seconds a day (max_device_seconds_per_day); \
             it used {:.1} today (UTC)",
            device_ms_today as f64 / MS_PER_SECOND as f64
        )));
    }
    Ok(())
}

/// A claim refusal of `task`, which stays queued: the dispatch queues
/// get it back.
pub(crate) fn held(err: StoreError, task: QueuedTask) -> StoreError {
    match err {
        StoreError::OverQuota(message) => StoreError::TenantAtLimit {
            message,
            task: Box::new(task),
        },
        other => other,
    }
}

/// A stored limit column (`NULL`: none; the columns' checks keep it ≥ 0).
pub(crate) fn limit(value: Option<i64>) -> Option<u64> {
    value.map(|v| v.max(0) as u64)
}

/// A limit as a column value.
pub(crate) fn column(limit: Option<u64>) -> Option<i64> {
    limit.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(queued: Option<u64>, running: Option<u64>, seconds: Option<u64>) -> TenantLimits {
        TenantLimits {
            weight: 1,
            max_queued_tasks: queued,
            max_running_tasks: running,
            max_device_seconds_per_day: seconds,
        }
    }

    fn refusal(result: Result<()>) -> String {
        match result {
            Err(StoreError::OverQuota(message)) => message,
            other => panic!("expected an over-quota refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_submission_may_fill_the_queued_limit_exactly_but_not_pass_it() {
        let l = limits(Some(10), None, None);
        let facts = |queued, adding| SubmitFacts {
            queued,
            adding,
            device_ms_today: 0,
        };
        assert!(check_submit("a", &l, facts(7, 3)).is_ok());
        let message = refusal(check_submit("a", &l, facts(7, 4)));
        assert!(message.contains("at most 10 queued tasks"), "{message}");
        assert!(
            message.contains("it has 7 queued and this job adds 4"),
            "{message}"
        );
    }

    #[test]
    fn a_claim_waits_at_the_running_limit() {
        let l = limits(None, Some(2), None);
        let facts = |running| ClaimFacts {
            running,
            device_ms_today: 0,
        };
        assert!(check_claim("a", &l, facts(1)).is_ok());
        let message = refusal(check_claim("a", &l, facts(2)));
        assert!(message.contains("at most 2 tasks at once"), "{message}");
        assert!(message.contains("2 are running"), "{message}");
    }

    #[test]
    fn spent_device_time_refuses_submissions_and_claims() {
        let l = limits(None, None, Some(60));
        let submit = SubmitFacts {
            queued: 0,
            adding: 1,
            device_ms_today: 60_000,
        };
        let message = refusal(check_submit("a", &l, submit));
        assert!(message.contains("60 device-seconds a day"), "{message}");
        assert!(message.contains("used 60.0 today"), "{message}");
        let claim = ClaimFacts {
            running: 0,
            device_ms_today: 59_999,
        };
        assert!(check_claim("a", &l, claim).is_ok());
    }

    #[test]
    fn no_limits_admit_anything() {
        let l = TenantLimits::default();
        let submit = SubmitFacts {
            queued: u64::MAX,
            adding: u64::MAX,
            device_ms_today: u64::MAX,
        };
        assert!(check_submit("a", &l, submit).is_ok());
    }
}
