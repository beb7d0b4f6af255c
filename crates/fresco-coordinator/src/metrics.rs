//! What the coordinator tells Prometheus (served when `--metrics-listen`
//! is given; without a recorder every call here is a no-op). Labels are
//! bounded: a model, or an API method; never a task, job, worker or
//! tenant id.
//!
//! - gauges per model and state, refreshed by the [`crate::gauges`] pass;
//! - histograms of request handling and of dispatch lag;
//! - counters of what the API and the background passes did.

use std::future::Future;
use std::time::{Duration, Instant};

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

/// Gauge: a model's tasks in `state` (`queued`, `running`, `failed`).
pub const TASKS: &str = "fresco_tasks";
/// Gauge: a model's queued tasks that are claimable now (of an unpaused
/// job, past their backoff).
pub const TASKS_DUE: &str = "fresco_tasks_due";
/// Counter: a model's tasks that succeeded.
pub const TASKS_COMPLETED: &str = "fresco_tasks_completed_total";
/// Counter: a model's tasks that failed for good (out of attempts, a bad
/// request, or their deadline passed).
pub const TASKS_FAILED: &str = "fresco_tasks_failed_total";
/// Histogram: seconds an API call took to handle, by `method`.
pub const REQUEST_DURATION: &str = "fresco_coordinator_request_duration_seconds";
/// Histogram: seconds between a task becoming due and its claim.
pub const DISPATCH_LAG: &str = "fresco_coordinator_dispatch_lag_seconds";
/// Counter: attempts that ended with their task back in the queue.
pub const RETRIES: &str = "fresco_coordinator_retries_total";
/// Counter: leases the reaper ended because heartbeats stopped.
pub const LEASE_EXPIRIES: &str = "fresco_coordinator_lease_expiries_total";
/// Counter: task ids the reconciler pushed again into the dispatch queues.
pub const RECONCILER_PUSHES: &str = "fresco_coordinator_reconciler_pushes_total";
/// Counter: workers quarantined.
pub const QUARANTINES: &str = "fresco_coordinator_quarantines_total";
/// Counter: reads of watched jobs by the `WatchJob` pollers: one per
/// watched job per interval, however many streams watch it.
pub const WATCH_POLLS: &str = "fresco_coordinator_watch_polls_total";
/// Counter: task-count changes folded into the per-job counts.
pub const TASK_COUNTS_FOLDED: &str = "fresco_coordinator_task_counts_folded_total";

/// Every metric above with its help text; each counter without labels
/// starts at zero, so a scrape lists it before its first event.
pub fn describe() {
    describe_gauge!(
        TASKS,
        "Tasks of a model in a state (queued, running, failed)"
    );
    describe_gauge!(
        TASKS_DUE,
        "Queued tasks of a model claimable now: of an unpaused job, past their backoff"
    );
    describe_counter!(TASKS_COMPLETED, "Tasks of a model that succeeded");
    describe_counter!(
        TASKS_FAILED,
        "Tasks of a model that failed for good (out of attempts, a bad request, or past their deadline)"
    );
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Time the coordinator took to handle an API call, by method"
    );
    describe_histogram!(
        DISPATCH_LAG,
        Unit::Seconds,
        "Time from a task becoming due (submitted, or its backoff over) to its claim"
    );
    describe_counter!(
        RETRIES,
        "Attempts that ended with their task back in the queue"
    );
    describe_counter!(
        LEASE_EXPIRIES,
        "Leases ended because their heartbeats stopped"
    );
    describe_counter!(
        RECONCILER_PUSHES,
        "Task ids the reconciler pushed again into the dispatch queues"
    );
    describe_counter!(QUARANTINES, "Workers quarantined");
    counter!(QUARANTINES).absolute(0);
    describe_counter!(
        WATCH_POLLS,
        "Reads of watched jobs by the WatchJob pollers: one per watched job per interval, however many watch it"
    );
    counter!(WATCH_POLLS).absolute(0);
    describe_counter!(
        TASK_COUNTS_FOLDED,
        "Task-count changes (one per job and state per statement that moved tasks) folded into the per-job counts"
    );
    counter!(TASK_COUNTS_FOLDED).absolute(0);
}

/// Runs one API call, recording how long it took under `method`.
pub async fn timed<T>(method: &'static str, call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = call.await;
    histogram!(REQUEST_DURATION, "method" => method).record(started.elapsed());
    out
}

/// A model's gauges, now.
pub fn set_task_gauges(model: &str, queued: u64, due: u64, running: u64, failed: u64) {
    for (state, tasks) in [("queued", queued), ("running", running), ("failed", failed)] {
        gauge!(TASKS, "model" => model.to_owned(), "state" => state).set(tasks as f64);
    }
    gauge!(TASKS_DUE, "model" => model.to_owned()).set(due as f64);
    // The model's counters show from its first task on, at zero until
    // something happens, so rates over them are defined.
    for name in [
        TASKS_COMPLETED,
        TASKS_FAILED,
        RETRIES,
        LEASE_EXPIRIES,
        RECONCILER_PUSHES,
    ] {
        counter!(name, "model" => model.to_owned()).increment(0);
    }
}

pub fn dispatch_lag(model: &str, waited: Duration) {
    histogram!(DISPATCH_LAG, "model" => model.to_owned()).record(waited);
}

pub fn task_completed(model: &str) {
    counter!(TASKS_COMPLETED, "model" => model.to_owned()).increment(1);
}

pub fn tasks_failed(model: &str, tasks: u64) {
    counter!(TASKS_FAILED, "model" => model.to_owned()).increment(tasks);
}

pub fn retried(model: &str) {
    counter!(RETRIES, "model" => model.to_owned()).increment(1);
}

pub fn lease_expired(model: &str) {
    counter!(LEASE_EXPIRIES, "model" => model.to_owned()).increment(1);
}

pub fn reconciler_pushed(model: &str, tasks: u64) {
    counter!(RECONCILER_PUSHES, "model" => model.to_owned()).increment(tasks);
}

pub fn quarantined() {
    counter!(QUARANTINES).increment(1);
}

/// One read of a watched job by its poller.
pub fn watch_polled() {
    counter!(WATCH_POLLS).increment(1);
}

pub fn task_counts_folded(changes: u64) {
    counter!(TASK_COUNTS_FOLDED).increment(changes);
}
