//! What the worker tells Prometheus (served when `--metrics-listen` is
//! given; without a recorder every call here is a no-op). Labels are
//! bounded: a model, or how a task ended; never a task or job id.
//!
//! Device memory is not exported: on CPU it is the process's memory,
//! which the node's own exporter shows, and candle offers no query of a
//! GPU's free memory; [`CACHE_BYTES`] shows what the loaded weights hold.

use std::time::Duration;

use fresco_pipeline::{CacheStats, ModelCache};
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

use crate::task::Ended;

/// Histogram: seconds one task's sampling took (the model's load not
/// included), by `model`.
pub const SAMPLING: &str = "fresco_worker_sampling_seconds";
/// Histogram: seconds one denoising step took, by `model`.
pub const STEP: &str = "fresco_worker_step_seconds";
/// Histogram: seconds loading a model into the cache took, by `model`.
pub const MODEL_LOAD: &str = "fresco_worker_model_load_seconds";
/// Counter: model requests the cache served from memory.
pub const CACHE_HITS: &str = "fresco_worker_model_cache_hits_total";
/// Counter: model requests that loaded the model.
pub const CACHE_MISSES: &str = "fresco_worker_model_cache_misses_total";
/// Counter: models dropped from the cache to stay within its budget.
pub const CACHE_EVICTIONS: &str = "fresco_worker_model_cache_evictions_total";
/// Gauge: bytes of weights the cache holds.
pub const CACHE_BYTES: &str = "fresco_worker_model_cache_bytes";
/// Gauge: the cache's budget in bytes.
pub const CACHE_BUDGET: &str = "fresco_worker_model_cache_budget_bytes";
/// Histogram: seconds uploading one task's images took, by `model`.
pub const UPLOAD: &str = "fresco_worker_upload_seconds";
/// Counter: bytes of images uploaded, by `model`.
pub const UPLOAD_BYTES: &str = "fresco_worker_upload_bytes_total";
/// Counter: tasks run, by `model` and how they ended (`outcome`:
/// succeeded, failed, given_back, lease_lost, unreported).
pub const TASKS: &str = "fresco_worker_tasks_total";

/// Every metric above with its help text.
pub fn describe() {
    describe_histogram!(
        SAMPLING,
        Unit::Seconds,
        "Time one task's sampling took, the model's load not included"
    );
    describe_histogram!(STEP, Unit::Seconds, "Time one denoising step took");
    describe_histogram!(
        MODEL_LOAD,
        Unit::Seconds,
        "Time loading a model into the cache took"
    );
    describe_counter!(CACHE_HITS, "Model requests served from the cache");
    describe_counter!(CACHE_MISSES, "Model requests that loaded the model");
    describe_counter!(
        CACHE_EVICTIONS,
        "Models dropped from the cache to stay within its budget"
    );
    describe_gauge!(CACHE_BYTES, Unit::Bytes, "Bytes of weights the cache holds");
    describe_gauge!(CACHE_BUDGET, Unit::Bytes, "The model cache's budget");
    describe_histogram!(
        UPLOAD,
        Unit::Seconds,
        "Time uploading one task's images took"
    );
    describe_counter!(UPLOAD_BYTES, Unit::Bytes, "Bytes of images uploaded");
    describe_counter!(TASKS, "Tasks this worker ran, by how they ended");
}

pub fn model_loaded(model: &str, took: Duration) {
    histogram!(MODEL_LOAD, "model" => model.to_owned()).record(took);
}

pub fn sampled(model: &str, took: Duration) {
    histogram!(SAMPLING, "model" => model.to_owned()).record(took);
}

pub fn step(model: &str, took: Duration) {
    histogram!(STEP, "model" => model.to_owned()).record(took);
}

pub fn uploaded(model: &str, took: Duration, bytes: u64) {
    histogram!(UPLOAD, "model" => model.to_owned()).record(took);
    counter!(UPLOAD_BYTES, "model" => model.to_owned()).increment(bytes);
}

pub fn task_ended(model: &str, ended: &Ended) {
    let outcome = match ended {
        Ended::Succeeded => "succeeded",
        Ended::Failed => "failed",
        Ended::GivenBack => "given_back",
        Ended::LeaseLost => "lease_lost",
        Ended::Unreported => "unreported",
    };
    counter!(TASKS, "model" => model.to_owned(), "outcome" => outcome).increment(1);
}

/// Carries the cache's counters and held bytes into the metrics. It adds
/// what changed since the last call rather than setting totals, so several
/// workers in one process (`fresco dev`) add up instead of overwriting
/// each other.
pub struct CacheMetrics {
    last: CacheStats,
    last_bytes: u64,
}

impl CacheMetrics {
    /// Starts from an empty cache; shows its budget.
    pub fn new(cache: &ModelCache) -> Self {
        gauge!(CACHE_BUDGET).increment(cache.budget_bytes() as f64);
        for name in [CACHE_HITS, CACHE_MISSES, CACHE_EVICTIONS] {
            counter!(name).increment(0);
        }
        gauge!(CACHE_BYTES).increment(0.0);
        Self {
            last: CacheStats::default(),
            last_bytes: 0,
        }
    }

    /// Adds what the cache did since the last call.
    pub fn update(&mut self, cache: &ModelCache) {
        let now = cache.stats();
        counter!(CACHE_HITS).increment(now.hits.saturating_sub(self.last.hits));
        counter!(CACHE_MISSES).increment(now.misses.saturating_sub(self.last.misses));
        counter!(CACHE_EVICTIONS).increment(now.evictions.saturating_sub(self.last.evictions));
        let bytes = cache.used_bytes();
        gauge!(CACHE_BYTES).increment(bytes as f64 - self.last_bytes as f64);
        self.last = now;
        self.last_bytes = bytes;
    }
}
