//! [`ModelCache`]: keeps loaded pipelines in memory under a byte budget,
//! evicting the least recently used ones.
//!
//! Evicting only drops the cache's reference: a pipeline still used by a running
//! task stays alive until that task releases its `Arc`. With a weights
//! hasher ([`ModelCache::with_weights_hasher`]) each load also hashes the
//! model's weights, once, on the loading thread, and the hash stays with the
//! loaded pipeline.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use candle_core::Device;
use tracing::info;

use crate::error::{Error, Result};
use crate::types::Pipeline;

/// Function that constructs a pipeline for a model id, e.g. a
/// [`ModelRegistry`](crate::ModelRegistry)'s `load`.
pub type Loader = Box<dyn Fn(&str, &Device) -> Result<Arc<dyn Pipeline>> + Send + Sync>;

/// Function that hashes a model's weights, e.g. a
/// [`ModelRegistry`](crate::ModelRegistry)'s `weights_sha256`.
pub type WeightsHasher = Box<dyn Fn(&str) -> Result<String> + Send + Sync>;

/// Counters since the cache was created.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheStats {
    /// `get` calls served from memory.
    pub hits: u64,
    /// `get` calls that had to load the model.
    pub misses: u64,
    /// Pipelines dropped to stay within the budget.
    pub evictions: u64,
    /// Total seconds spent loading.
    pub load_seconds: f64,
}

/// What [`ModelCache::fetch`] returns: the pipeline, and how long loading
/// it took when this call loaded it.
pub struct Fetched {
    pub pipeline: Arc<dyn Pipeline>,
    pub loaded_in: Option<Duration>,
    /// Lower-case hex SHA-256 of its weights (empty without a hasher).
    pub weights_sha256: String,
}

struct Entry {
    model_id: String,
    pipeline: Arc<dyn Pipeline>,
    weights_sha256: String,
    bytes: u64,
    last_used: u64,
}

#[derive(Default)]
struct Inner {
    entries: Vec<Entry>,
    clock: u64,
    stats: CacheStats,
}

/// LRU cache of pipelines, shareable as `Arc<ModelCache>`.
///
/// Loads happen outside the lock, so hits for other models are not blocked by a
/// slow load; two concurrent misses for the same model may both load it, and the
/// first one inserted wins.
pub struct ModelCache {
    budget_bytes: u64,
    device: Device,
    loader: Loader,
    hasher: Option<WeightsHasher>,
    inner: Mutex<Inner>,
}

impl ModelCache {
    /// A cache holding at most `budget_bytes` of weights, loading through
    /// `loader` (the most recently requested model is always kept, even if it
    /// alone exceeds the budget).
    pub fn with_loader(budget_bytes: u64, device: Device, loader: Loader) -> Self {
        Self {
            budget_bytes,
            device,
            loader,
            hasher: None,
            inner: Mutex::default(),
        }
    }

    /// The same cache, hashing each model's weights with `hasher` when it
    /// loads it; a hash that fails fails the load.
    pub fn with_weights_hasher(mut self, hasher: WeightsHasher) -> Self {
        self.hasher = Some(hasher);
        self
    }

    /// The hash of `model_id`'s weights, as the hasher tells it.
    fn weights_sha256(&self, model_id: &str) -> Result<String> {
        match &self.hasher {
            Some(hasher) => hasher(model_id),
            None => Ok(String::new()),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| Error::Internal("model cache lock poisoned".into()))
    }

    /// The pipeline for `model_id`, loading it on a miss and then evicting least
    /// recently used pipelines (never this one) while over budget.
    pub fn get(&self, model_id: &str) -> Result<Arc<dyn Pipeline>> {
        self.fetch(model_id).map(|fetched| fetched.pipeline)
    }

    /// As [`ModelCache::get`], also telling how long a load this call made
    /// took (none: a hit).
    pub fn fetch(&self, model_id: &str) -> Result<Fetched> {
        {
            let mut inner = self.lock()?;
            inner.clock += 1;
            let now = inner.clock;
            if let Some(e) = inner.entries.iter_mut().find(|e| e.model_id == model_id) {
                e.last_used = now;
                let fetched = Fetched {
                    pipeline: e.pipeline.clone(),
                    loaded_in: None,
                    weights_sha256: e.weights_sha256.clone(),
                };
                inner.stats.hits += 1;
                return Ok(fetched);
            }
        }

        let started = Instant::now();
        let pipeline = (self.loader)(model_id, &self.device)?;
        let weights_sha256 = self.weights_sha256(model_id)?;
        let loaded_in = started.elapsed();
        let seconds = loaded_in.as_secs_f64();
        let bytes = pipeline.memory_bytes();
        info!(model = model_id, seconds, bytes, "model loaded");

        let mut inner = self.lock()?;
        inner.stats.misses += 1;
        inner.stats.load_seconds += seconds;
        inner.clock += 1;
        let now = inner.clock;
        let pipeline = match inner.entries.iter_mut().find(|e| e.model_id == model_id) {
            Some(e) => {
                // Loaded concurrently by another caller; keep the first copy.
                e.last_used = now;
                e.pipeline.clone()
            }
            None => {
                inner.entries.push(Entry {
                    model_id: model_id.to_owned(),
                    pipeline: pipeline.clone(),
                    weights_sha256: weights_sha256.clone(),
                    bytes,
                    last_used: now,
                });
                pipeline
            }
        };
        self.evict_over_budget(&mut inner, model_id);
        Ok(Fetched {
            pipeline,
            loaded_in: Some(loaded_in),
            weights_sha256,
        })
    }

    fn evict_over_budget(&self, inner: &mut Inner, keep: &str) {
        loop {
            let total: u64 = inner.entries.iter().map(|e| e.bytes).sum();
            if total <= self.budget_bytes {
                return;
            }
            let victim = inner
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.model_id != keep)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i);
            let Some(i) = victim else { return };
            let e = inner.entries.remove(i);
            inner.stats.evictions += 1;
            info!(
                model = %e.model_id,
                bytes = e.bytes,
                budget = self.budget_bytes,
                "model evicted from cache"
            );
        }
    }

    /// Ids of the pipelines currently held, most recently used first.
    pub fn loaded_models(&self) -> Vec<String> {
        let Ok(inner) = self.lock() else {
            return Vec::new();
        };
        let mut entries: Vec<&Entry> = inner.entries.iter().collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.last_used));
        entries.iter().map(|e| e.model_id.clone()).collect()
    }

    /// Hit/miss/eviction counters.
    pub fn stats(&self) -> CacheStats {
        self.lock().map(|i| i.stats.clone()).unwrap_or_default()
    }

    /// Bytes of weights currently held.
    pub fn used_bytes(&self) -> u64 {
        self.lock()
            .map(|i| i.entries.iter().map(|e| e.bytes).sum())
            .unwrap_or(0)
    }

    /// The configured budget.
    pub fn budget_bytes(&self) -> u64 {
        self.budget_bytes
    }
}
