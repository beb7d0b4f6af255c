//! Deterministic random weights: a candle `VarBuilder` backend that draws every
//! requested tensor from a ChaCha RNG seeded by (model seed, tensor name).
//!
//! Seeding per name (not per call order) keeps weights stable when modules are
//! added or reordered. Every generated tensor is recorded so the model can be
//! saved to safetensors and reloaded through the ordinary `VarBuilder::from_tensors` path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use fresco_pipeline::seed::{gaussian_noise, splitmix64};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Shared record of the tensors a [`SeededInit`] produced, keyed by full name.
pub(crate) type Recorded = Arc<Mutex<HashMap<String, Tensor>>>;

/// `SimpleBackend` producing seeded random tensors according to the init hints.
pub(crate) struct SeededInit {
    seed: u64,
    recorded: Recorded,
}

impl SeededInit {
    pub(crate) fn new(seed: u64) -> (Self, Recorded) {
        let recorded: Recorded = Arc::default();
        (
            Self {
                seed,
                recorded: recorded.clone(),
            },
            recorded,
        )
    }

    fn name_seed(&self, name: &str) -> u64 {
        // FNV-1a over the name, then mixed with the model seed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        splitmix64(self.seed ^ h)
    }

    fn values(&self, shape: &Shape, name: &str, init: Init) -> Vec<f32> {
        let n = shape.elem_count();
        let seed = self.name_seed(name);
        let uniform = |lo: f64, up: f64| {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            (0..n)
                .map(|_| (lo + (up - lo) * rng.random::<f64>()) as f32)
                .collect::<Vec<f32>>()
        };
        let normal = |mean: f64, std: f64| {
            gaussian_noise(seed, n)
                .into_iter()
                .map(|z| (mean + std * f64::from(z)) as f32)
                .collect::<Vec<f32>>()
        };
        match init {
            Init::Const(c) => vec![c as f32; n],
            Init::Uniform { lo, up } => uniform(lo, up),
            Init::Randn { mean, stdev } => normal(mean, stdev),
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let fan = fan.for_shape(shape).max(1);
                let std = non_linearity.gain() / (fan as f64).sqrt();
                match dist {
                    NormalOrUniform::Uniform => {
                        let bound = 3f64.sqrt() * std;
                        uniform(-bound, bound)
                    }
                    NormalOrUniform::Normal => normal(0.0, std),
                }
            }
        }
    }
}

impl SimpleBackend for SeededInit {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut recorded = self
            .recorded
            .lock()
            .map_err(|_| candle_core::Error::Msg("weight record lock poisoned".into()))?;
        if let Some(t) = recorded.get(name) {
            if t.shape() != &s {
                return Err(candle_core::Error::Msg(format!(
                    "weight `{name}` requested twice with shapes {:?} and {s:?}",
                    t.shape()
                )));
            }
            return t.to_dtype(dtype);
        }
        let t = Tensor::from_vec(self.values(&s, name, h), s, dev)?.to_dtype(dtype)?;
        recorded.insert(name.to_owned(), t.clone());
        Ok(t)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let recorded = self
            .recorded
            .lock()
            .map_err(|_| candle_core::Error::Msg("weight record lock poisoned".into()))?;
        recorded
            .get(name)
            .ok_or_else(|| candle_core::Error::CannotFindTensor {
                path: name.to_owned(),
            })?
            .to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.recorded
            .lock()
            .map(|r| r.contains_key(name))
            .unwrap_or(false)
    }
}
