//! A job's recent throughput and the finish it predicts, and the filter
//! `list_jobs` applies (labels, job-level state).
//!
//! Both stores read, per job, the tasks that ended (succeeded or failed) in
//! the last [`RATE_WINDOW`] and when the first of those started; the rate
//! and the estimate are worked out here, once for both.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fresco_core::{JobId, JobState, Labels, TaskState};
use uuid::Uuid;

use crate::error::Result;
use crate::records::JobSummary;
use crate::rows::Columns;

/// How far back a job's throughput looks.
pub const RATE_WINDOW: Duration = Duration::from_secs(5 * 60);

/// A job's recent throughput and, from it, when its remaining tasks should
/// have ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobRate {
    /// Tasks that ended (succeeded or failed) per minute over `window`.
    pub tasks_per_minute: f64,
    /// Images those tasks made per minute over `window`.
    pub images_per_minute: f64,
    /// The span the rates are over: [`RATE_WINDOW`], or less when the
    /// first task that ended in it started later (zero: none ended).
    pub window: Duration,
    /// When the queued and running tasks should all have ended at this
    /// rate; none until a task ended within the window, and none once the
    /// job has finished.
    pub eta: Option<DateTime<Utc>>,
}

/// What the store reads of one job's tasks that ended within the window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct RecentEnds {
    pub tasks: u64,
    pub images: u64,
    /// When the first of them started.
    pub first_started: Option<DateTime<Utc>>,
}

/// Per job, rows of `job_id, ended, images, first_started`.
pub(crate) fn recent_ends<R: Columns>(rows: &[R]) -> Result<HashMap<Uuid, RecentEnds>> {
    rows.iter()
        .map(|row| {
            Ok((
                row.uuid("job_id")?,
                RecentEnds {
                    tasks: row.big("ended")?,
                    images: row.big("images")?,
                    first_started: row.optional_time("first_started")?,
                },
            ))
        })
        .collect()
}

/// The start of the window that ends at `now`.
pub(crate) fn window_start(now: DateTime<Utc>) -> DateTime<Utc> {
    now - chrono::Duration::from_std(RATE_WINDOW).unwrap_or(chrono::Duration::zero())
}

/// A job's rate at `now` from its recent ends, with `remaining` tasks
/// queued or running.
pub(crate) fn job_rate(ends: RecentEnds, remaining: u64, now: DateTime<Utc>) -> JobRate {
    let Some(first_started) = ends.first_started.filter(|_| ends.tasks > 0) else {
        return JobRate::default();
    };
    let from = first_started.max(window_start(now));
    // A task ended after it started, so the span is positive but for
    // clocks that disagree: count at least a millisecond.
    let span_ms = (now - from).num_milliseconds().max(1);
    let per_minute = |n: u64| n as f64 * 60_000.0 / span_ms as f64;
    let eta = (remaining > 0).then(|| {
        let ms = remaining as f64 * span_ms as f64 / ends.tasks as f64;
        now + chrono::Duration::milliseconds(ms.min(i64::MAX as f64 / 2.0) as i64)
    });
    JobRate {
        tasks_per_minute: per_minute(ends.tasks),
        images_per_minute: per_minute(ends.images),
        window: Duration::from_millis(span_ms as u64),
        eta,
    }
}

/// Fills in each job's rate at `now`.
pub(crate) fn attach_rates(
    jobs: &mut [JobSummary],
    mut ends: HashMap<Uuid, RecentEnds>,
    now: DateTime<Utc>,
) {
    for job in jobs {
        let remaining = job.counts.get(TaskState::Queued) + job.counts.get(TaskState::Running);
        let recent = ends.remove(&job.id.0).unwrap_or_default();
        job.rate = job_rate(recent, remaining, now);
    }
}

/// Which jobs `list_jobs` returns: each field set narrows the list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub owner: Option<String>,
    pub tenant: Option<String>,
    /// Jobs carrying every one of these labels with these values.
    pub labels: Labels,
    pub state: Option<JobState>,
    /// Jobs of this model.
    pub model: Option<String>,
    /// Jobs whose id starts with, or whose name or a task's prompt
    /// contains, this text (case-insensitive).
    pub search: Option<String>,
    /// Jobs listed after this one, newest first: the next page.
    pub after: Option<JobId>,
}

impl JobFilter {
    /// The labels as the JSON object both stores match against.
    pub(crate) fn labels_json(&self) -> String {
        serde_json::to_string(&self.labels).unwrap_or_else(|_| "{}".into())
    }

    pub(crate) fn state_str(&self) -> Option<&'static str> {
        self.state.map(JobState::as_str)
    }

    /// The search text, lower-cased as both stores compare it.
    pub(crate) fn search_lower(&self) -> Option<String> {
        self.search.as_deref().map(str::to_lowercase)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn no_end_no_rate_and_no_eta() {
        let rate = job_rate(RecentEnds::default(), 10, at(0));
        assert_eq!(rate, JobRate::default());
    }

    #[test]
    fn the_rate_runs_from_the_first_start_within_the_window() {
        let ends = RecentEnds {
            tasks: 2,
            images: 8,
            first_started: Some(at(-60)),
        };
        let rate = job_rate(ends, 4, at(0));
        assert_eq!(rate.tasks_per_minute, 2.0);
        assert_eq!(rate.images_per_minute, 8.0);
        assert_eq!(rate.window, Duration::from_secs(60));
        assert_eq!(rate.eta, Some(at(120)));
    }

    #[test]
    fn an_older_start_is_cut_at_the_window() {
        let ends = RecentEnds {
            tasks: 10,
            images: 10,
            first_started: Some(at(-3600)),
        };
        let rate = job_rate(ends, 0, at(0));
        assert_eq!(rate.window, RATE_WINDOW);
        assert_eq!(rate.tasks_per_minute, 2.0);
        assert_eq!(rate.eta, None, "nothing remains");
    }
}
