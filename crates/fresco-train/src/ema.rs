//! Exponential moving average (EMA) of the model weights.
//!
//! After every optimizer step `n` (1-based count of steps done) each averaged
//! weight becomes `ema ← d·ema + (1 − d)·w` with the warmed-up decay
//! `d = min(decay, (1 + n) / (10 + n))`, so early, fast-changing weights do not
//! dominate a short run. The average is what [`crate::Trainer::save_model`] writes
//! when EMA is on; checkpoints keep it in [`EMA_FILE`] so a resumed run continues it
//! exactly.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use candle_nn::VarMap;

use crate::error::{Error, Result};

/// File of the averaged weights inside a checkpoint.
pub const EMA_FILE: &str = "ema.safetensors";

/// The averaged copy of every variable of a `VarMap`.
pub struct Ema {
    decay: f64,
    weights: HashMap<String, Tensor>,
}

impl Ema {
    /// Starts the average at the current values of `varmap`'s variables.
    pub fn new(varmap: &VarMap, decay: f64) -> Result<Self> {
        if !(0.0..1.0).contains(&decay) {
            return Err(Error::Options(format!(
                "EMA decay must be in [0, 1), got {decay}"
            )));
        }
        let data = varmap
            .data()
            .lock()
            .map_err(|_| Error::Options("varmap lock poisoned".into()))?;
        let weights = data
            .iter()
            .map(|(name, var)| Ok((name.clone(), var.as_tensor().copy()?.detach())))
            .collect::<Result<HashMap<_, _>>>()?;
        Ok(Self { decay, weights })
    }

    /// The decay applied after `steps_done` optimizer steps: `min(decay, (1+n)/(10+n))`.
    pub fn effective_decay(decay: f64, steps_done: u64) -> f64 {
        let n = steps_done as f64;
        decay.min((1.0 + n) / (10.0 + n))
    }

    /// Folds the current values of `varmap` into the average (call once after
    /// every optimizer step, with the number of steps done so far).
    pub fn update(&mut self, varmap: &VarMap, steps_done: u64) -> Result<()> {
        let d = Self::effective_decay(self.decay, steps_done);
        let data = varmap
            .data()
            .lock()
            .map_err(|_| Error::Options("varmap lock poisoned".into()))?;
        for (name, avg) in self.weights.iter_mut() {
            let var = data
                .get(name)
                .ok_or_else(|| Error::Options(format!("EMA weight `{name}` not in the model")))?;
            *avg = ((&*avg * d)? + (var.as_tensor().detach() * (1.0 - d))?)?;
        }
        Ok(())
    }

    /// The averaged weights, by variable name.
    pub fn weights(&self) -> &HashMap<String, Tensor> {
        &self.weights
    }

    /// Writes the averaged weights to `path` (safetensors).
    pub fn save(&self, path: &Path) -> Result<()> {
        candle_core::safetensors::save(&self.weights, path)?;
        Ok(())
    }

    /// Replaces the average by the one saved at `path`; every weight must be there.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let device = match self.weights.values().next() {
            Some(t) => t.device().clone(),
            None => return Ok(()),
        };
        let mut map = candle_core::safetensors::load(path, &device)?;
        for (name, avg) in self.weights.iter_mut() {
            let t = map
                .remove(name)
                .ok_or_else(|| Error::Options(format!("EMA state lacks `{name}`")))?;
            if t.dims() != avg.dims() {
                return Err(Error::Options(format!(
                    "EMA weight `{name}` has another shape"
                )));
            }
            *avg = t;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn varmap(value: f32) -> VarMap {
        let vm = VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        vb.get_with_hints(3, "w", candle_nn::init::Init::Const(f64::from(value)))
            .unwrap();
        vm
    }

    fn value(e: &Ema) -> Vec<f32> {
        e.weights()["w"].to_vec1::<f32>().unwrap()
    }

    #[test]
    fn average_follows_the_warmed_up_decay_and_round_trips() {
        assert_eq!(Ema::effective_decay(0.999, 0), 0.1);
        assert_eq!(Ema::effective_decay(0.5, 1000), 0.5);
        let vm = varmap(1.0);
        let mut e = Ema::new(&vm, 0.9).unwrap();
        // The average is a copy: later changes of the variable do not leak into it.
        let w = vm.data().lock().unwrap()["w"].clone();
        w.set(&Tensor::new(&[3f32, 3., 3.], &Device::Cpu).unwrap())
            .unwrap();
        assert_eq!(value(&e), vec![1.0; 3]);
        e.update(&vm, 1).unwrap();
        let d = Ema::effective_decay(0.9, 1) as f32; // 2/11
        let expect = d * 1.0 + (1.0 - d) * 3.0;
        assert!(value(&e).iter().all(|v| (v - expect).abs() < 1e-6));

        let dir = std::env::temp_dir().join(format!("fresco-ema-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(EMA_FILE);
        e.save(&path).unwrap();
        let mut back = Ema::new(&varmap(0.0), 0.9).unwrap();
        back.load(&path).unwrap();
        assert_eq!(value(&back), value(&e));
        assert!(Ema::new(&vm, 1.0).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
