//! AdamW with decoupled weight decay and global-norm gradient clipping, whose
//! state (moments and step count) can be saved and restored, so a resumed run
//! continues exactly where it stopped. The update is the one of
//! `candle_nn::AdamW` (checked in the tests), which keeps its state private.

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::VarMap;

use crate::error::{Error, Result};

/// AdamW hyper-parameters (the learning rate is given per step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay (applied to every variable, as in candle).
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value (`None`: no clipping).
    pub max_grad_norm: Option<f64>,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: Some(1.0),
        }
    }
}

struct Slot {
    name: String,
    var: Var,
    m: Var,
    v: Var,
}

/// The optimizer over every variable of a `VarMap`, in name order.
pub struct AdamW {
    slots: Vec<Slot>,
    step_t: u64,
    cfg: AdamWConfig,
}

impl AdamW {
    /// Zero moments for every float variable of `varmap`.
    pub fn new(varmap: &VarMap, cfg: AdamWConfig) -> Result<Self> {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| Error::Options("varmap lock poisoned".into()))?;
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        let slots = names
            .into_iter()
            .filter_map(|n| data.get(n).map(|v| (n, v)))
            .filter(|(_, v)| v.dtype().is_float())
            .map(|(name, var)| {
                Ok(Slot {
                    name: name.clone(),
                    var: var.clone(),
                    m: Var::zeros(var.shape(), var.dtype(), var.device())?,
                    v: Var::zeros(var.shape(), var.dtype(), var.device())?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            slots,
            step_t: 0,
            cfg,
        })
    }

    /// Updates taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.step_t
    }

    /// Global L2 norm of the gradients of the optimised variables.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut sum = 0f64;
        for s in &self.slots {
            if let Some(g) = grads.get(&s.var) {
                sum += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
            }
        }
        Ok(sum.sqrt())
    }

    /// One update with learning rate `lr`; returns the gradient norm before clipping.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<f64> {
        let norm = self.grad_norm(grads)?;
        let clip = match self.cfg.max_grad_norm {
            Some(max) if norm > max && norm.is_finite() => max / norm,
            _ => 1.0,
        };
        self.step_t += 1;
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
            ..
        } = self.cfg;
        let exp = i32::try_from(self.step_t).unwrap_or(i32::MAX);
        let scale_m = 1.0 / (1.0 - beta1.powi(exp));
        let scale_v = 1.0 / (1.0 - beta2.powi(exp));
        for s in &self.slots {
            let Some(g) = grads.get(&s.var) else {
                continue;
            };
            let g = if clip < 1.0 { (g * clip)? } else { g.clone() };
            let next_m = ((s.m.as_tensor() * beta1)? + (&g * (1.0 - beta1))?)?;
            let next_v = ((s.v.as_tensor() * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let m_hat = (&next_m * scale_m)?;
            let v_hat = (&next_v * scale_v)?;
            let theta = (s.var.as_tensor() * (1.0 - lr * weight_decay))?;
            let adjusted = (m_hat / (v_hat.sqrt()? + eps)?)?;
            let theta = (theta - (adjusted * lr)?)?;
            s.m.set(&next_m)?;
            s.v.set(&next_v)?;
            s.var.set(&theta)?;
        }
        Ok(norm)
    }

    /// Writes the moments to `path` (safetensors, keys `m.<name>` / `v.<name>`).
    /// The step count is the caller's to store (see [`Self::set_steps_taken`]).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut map: HashMap<String, Tensor> = HashMap::new();
        for s in &self.slots {
            map.insert(format!("m.{}", s.name), s.m.as_tensor().clone());
            map.insert(format!("v.{}", s.name), s.v.as_tensor().clone());
        }
        candle_core::safetensors::save(&map, path)?;
        Ok(())
    }

    /// Restores moments written by [`Self::save`] and the update count.
    pub fn load(&mut self, path: &Path, steps_taken: u64) -> Result<()> {
        let device = match self.slots.first() {
            Some(s) => s.var.device().clone(),
            None => return Ok(()),
        };
        let map = candle_core::safetensors::load(path, &device)?;
        for s in &self.slots {
            for (prefix, var) in [("m", &s.m), ("v", &s.v)] {
                let key = format!("{prefix}.{}", s.name);
                let t = map
                    .get(&key)
                    .ok_or_else(|| Error::Options(format!("optimizer state lacks `{key}`")))?;
                var.set(t)?;
            }
        }
        self.step_t = steps_taken;
        Ok(())
    }

    /// Overrides the update count (bias correction) after a restore.
    pub fn set_steps_taken(&mut self, steps: u64) {
        self.step_t = steps;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::Optimizer;

    /// Same trajectory as `candle_nn::AdamW` (no clipping, with weight decay).
    #[test]
    fn matches_candle_adamw() {
        let dev = Device::Cpu;
        let init = Tensor::new(&[[0.5f32, -1.0], [2.0, 0.25]], &dev).unwrap();
        let ours_map = VarMap::new();
        ours_map
            .data()
            .lock()
            .unwrap()
            .insert("w".into(), Var::from_tensor(&init).unwrap());
        let theirs = Var::from_tensor(&init).unwrap();
        let cfg = AdamWConfig {
            weight_decay: 0.01,
            max_grad_norm: None,
            ..AdamWConfig::default()
        };
        let mut ours = AdamW::new(&ours_map, cfg).unwrap();
        let mut reference = candle_nn::AdamW::new(
            vec![theirs.clone()],
            candle_nn::ParamsAdamW {
                lr: 0.01,
                weight_decay: 0.01,
                ..Default::default()
            },
        )
        .unwrap();
        let ours_var = ours_map.all_vars().remove(0);
        for _ in 0..5 {
            let loss = ours_var.as_tensor().sqr().unwrap().sum_all().unwrap();
            ours.step(&loss.backward().unwrap(), 0.01).unwrap();
            let loss = theirs.as_tensor().sqr().unwrap().sum_all().unwrap();
            reference.backward_step(&loss).unwrap();
        }
        assert_eq!(
            ours_var.as_tensor().to_vec2::<f32>().unwrap(),
            theirs.as_tensor().to_vec2::<f32>().unwrap()
        );
    }
}
