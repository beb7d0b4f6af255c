//! Trainable construction of [`DitPipeline`]: the same module code built from a
//! candle [`VarMap`] of trainable [`Var`](candle_core::Var)s, initialised from the
//! same seeded init as [`DitPipeline::random`], and the batched, autograd-friendly
//! velocity forward pass a training loop needs.
//!
//! The pipeline built by [`DitPipeline::from_varmap`] shares storage with the
//! `VarMap`: optimizer updates (`Var::set`) are seen by generation and by
//! [`DitPipeline::save`] without rebuilding anything.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use fresco_pipeline::{Error, Result};

use crate::config::DitConfig;
use crate::init::SeededInit;
use crate::pipeline::{DitPipeline, batch_context};
use crate::text_encoder::EncodedText;

impl DitPipeline {
    /// A `VarMap` holding every weight of a model with `config`, as trainable
    /// variables initialised exactly like [`DitPipeline::random`]`(_, config, seed, _)`
    /// (so `adaln_zero` applies here too).
    pub fn seeded_varmap(config: &DitConfig, seed: u64, device: &Device) -> Result<VarMap> {
        config.validate()?;
        let (init, recorded) = SeededInit::new(seed);
        let vb = VarBuilder::from_backend(Box::new(init), DType::F32, device.clone());
        Self::build_modules(config, vb, device)?;
        let recorded = recorded
            .lock()
            .map_err(|_| Error::Internal("weight record lock poisoned".into()))?;
        let varmap = VarMap::new();
        {
            let mut data = varmap
                .data()
                .lock()
                .map_err(|_| Error::Internal("varmap lock poisoned".into()))?;
            for (name, t) in recorded.iter() {
                data.insert(name.clone(), Var::from_tensor(t)?);
            }
        }
        Ok(varmap)
    }

    /// Builds the pipeline on the variables of `varmap` (see [`Self::seeded_varmap`];
    /// load trained values with `VarMap::load`). Every weight the model needs must
    /// already be in `varmap` — nothing is created with unseeded random init; a
    /// missing or mis-shaped one is an error.
    pub fn from_varmap(
        model_id: &str,
        config: DitConfig,
        varmap: &VarMap,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let before = var_count(varmap)?;
        let vb = VarBuilder::from_varmap(varmap, DType::F32, device);
        let (text, dit, tokenizer) = Self::build_modules(&config, vb, device)?;
        let data = varmap
            .data()
            .lock()
            .map_err(|_| Error::Internal("varmap lock poisoned".into()))?;
        if data.len() != before {
            return Err(Error::Config(format!(
                "the VarMap lacks {} of the model's weights",
                data.len() - before
            )));
        }
        let weights = data
            .iter()
            .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
            .collect();
        Ok(Self {
            model_id: model_id.to_owned(),
            config,
            tokenizer,
            text,
            dit,
            weights,
            device: device.clone(),
        })
    }

    /// Predicted velocity `v = noise − x0` for a batch `x_t: [B, 3, H, W]` at flow
    /// times `t` (one per row, or one for all) conditioned on one caption per row,
    /// given as token ids (from [`Self::tokenizer`]; `[NULL_TOKEN]` for the empty
    /// caption). Differentiable with respect to the model's variables when the
    /// pipeline was built by [`Self::from_varmap`].
    pub fn velocity(&self, x_t: &Tensor, t: &[f64], captions: &[Vec<u32>]) -> Result<Tensor> {
        let b = x_t.dim(0)?;
        if captions.len() != b {
            return Err(Error::InvalidParams(format!(
                "batch of {b} images but {} captions",
                captions.len()
            )));
        }
        let encoded = captions
            .iter()
            .map(|ids| self.text.encode(ids, &self.device))
            .collect::<Result<Vec<EncodedText>>>()?;
        let parts: Vec<(&EncodedText, usize)> = encoded.iter().map(|e| (e, 1)).collect();
        let ctx = batch_context(&parts, &self.device)?;
        self.dit.forward_ts(x_t, t, &ctx)
    }

    /// The device the model lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }
}

fn var_count(varmap: &VarMap) -> Result<usize> {
    Ok(varmap
        .data()
        .lock()
        .map_err(|_| Error::Internal("varmap lock poisoned".into()))?
        .len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::NULL_TOKEN;

    fn small() -> DitConfig {
        let mut c = DitConfig::tiny();
        c.hidden_size = 32;
        c.depth = 1;
        c.text.hidden_size = 32;
        c
    }

    #[test]
    fn varmap_weights_equal_random_weights() {
        let dev = Device::Cpu;
        let random = DitPipeline::random("r", small(), 9, &dev).unwrap();
        let vm = DitPipeline::seeded_varmap(&small(), 9, &dev).unwrap();
        let trainable = DitPipeline::from_varmap("t", small(), &vm, &dev).unwrap();
        assert_eq!(random.weights.len(), trainable.weights.len());
        for (name, w) in &random.weights {
            let v = &trainable.weights[name];
            assert_eq!(
                w.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                v.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                "{name}"
            );
        }
    }

    /// The architecture variants every forward test runs on: [`small`] plain,
    /// with a pixel refiner, with a caption layout MLP and with a learned
    /// position table.
    fn variants() -> Vec<DitConfig> {
        let edits: [fn(&mut DitConfig); 4] = [
            |_| {},
            |c| c.refiner_channels = 4,
            |c| c.layout_hidden = 8,
            |c| {
                c.learned_positions = true;
                c.max_side = 64;
            },
        ];
        edits
            .iter()
            .map(|edit| {
                let mut c = small();
                edit(&mut c);
                c
            })
            .collect()
    }

    #[test]
    fn velocity_has_gradients_and_matches_inference_path() {
        for cfg in variants() {
            velocity_has_gradients(cfg);
        }
    }

    fn velocity_has_gradients(cfg: DitConfig) {
        let dev = Device::Cpu;
        let vm = DitPipeline::seeded_varmap(&cfg, 3, &dev).unwrap();
        let p = DitPipeline::from_varmap("t", cfg, &vm, &dev).unwrap();
        let x = Tensor::from_vec(
            fresco_pipeline::seed::gaussian_noise(1, 2 * 3 * 16 * 16),
            (2, 3, 16, 16),
            &dev,
        )
        .unwrap();
        let caps = vec![p.tokenizer().tokenize("a red cat").ids, vec![NULL_TOKEN]];
        let v = p.velocity(&x, &[0.3, 0.8], &caps).unwrap();
        assert_eq!(v.dims(), &[2, 3, 16, 16]);
        // Row 0 equals a single-row call (padding of the shorter caption is masked).
        let v0 = p
            .velocity(&x.narrow(0, 0, 1).unwrap(), &[0.3], &caps[..1])
            .unwrap();
        let diff = (v.narrow(0, 0, 1).unwrap() - v0)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "{diff}");
        let loss = v.sqr().unwrap().mean_all().unwrap();
        let grads = loss.backward().unwrap();
        let data = vm.data().lock().unwrap();
        let missing: Vec<&String> = data
            .iter()
            .filter(|(_, v)| grads.get(v).is_none())
            .map(|(n, _)| n)
            .collect();
        assert!(missing.is_empty(), "no gradient for {missing:?}");
        assert!(p.velocity(&x, &[0.1, 0.2, 0.3], &caps).is_err());
        assert!(p.velocity(&x, &[0.1], &caps[..1]).is_err());
    }

    /// The training forward (`velocity`, autograd-tracked variables, composite
    /// norm/softmax) and the sampling forward (`generate`'s `encode` +
    /// `batch_context` + `Dit::forward` on plain tensors, fused kernels) must be the
    /// same function of (x_t, t, caption): same time scaling, same patchify /
    /// unpatchify, same positions, same caption encoding and padding mask.
    #[test]
    fn training_forward_equals_sampling_forward_on_the_same_weights() {
        for cfg in variants() {
            training_forward_equals_sampling_forward(cfg);
        }
    }

    /// A trainable pipeline with seeded random (not adaLN-Zero) weights, so every
    /// path contributes to the output, and a sampling pipeline built from
    /// detached copies of the same weights.
    fn training_and_sampling_pipelines(cfg: DitConfig, dev: &Device) -> (DitPipeline, DitPipeline) {
        let vm = DitPipeline::seeded_varmap(&cfg, 5, dev).unwrap();
        let train = DitPipeline::from_varmap("t", cfg.clone(), &vm, dev).unwrap();
        let plain: std::collections::HashMap<String, Tensor> = train
            .weights
            .iter()
            .map(|(n, w)| (n.clone(), w.detach()))
            .collect();
        assert!(plain.values().all(|w| !w.track_op()));
        let infer = DitPipeline::from_weights("i", cfg, plain, dev).unwrap();
        (train, infer)
    }

    fn training_forward_equals_sampling_forward(cfg: DitConfig) {
        let dev = Device::Cpu;
        let (train, infer) = training_and_sampling_pipelines(cfg, &dev);

        // 32x32 at patch 8: a 4x4 grid, so patch order and positions matter.
        let (n, side) = (2, 32);
        let x = Tensor::from_vec(
            fresco_pipeline::seed::gaussian_noise(4, n * 3 * side * side),
            (n, 3, side, side),
            &dev,
        )
        .unwrap();
        let cond_ids = train.tokenizer().tokenize("a red cat").ids;
        let uncond_ids = train.tokenizer().tokenize("").ids;
        assert_eq!(uncond_ids, vec![NULL_TOKEN]);
        let cond = infer.text.encode(&cond_ids, &dev).unwrap();
        let uncond = infer.text.encode(&uncond_ids, &dev).unwrap();
        // The guided sampling batch: [uncond × 1, cond × 1] (padded, masked).
        let ctx = batch_context(&[(&uncond, 1), (&cond, 1)], &dev).unwrap();
        let mut previous: Option<Tensor> = None;
        for t in [0.02, 0.5, 1.0] {
            let sampled = infer.dit.forward(&x, t, &ctx).unwrap();
            let trained = train
                .velocity(&x, &[t, t], &[uncond_ids.clone(), cond_ids.clone()])
                .unwrap();
            let scale = sampled.abs().unwrap().max_all().unwrap();
            let scale = scale.to_scalar::<f32>().unwrap();
            let diff = (&sampled - &trained).unwrap().abs().unwrap().max_all();
            let diff = diff.unwrap().to_scalar::<f32>().unwrap();
            assert!(scale > 1e-2, "degenerate output at t={t}");
            assert!(diff < 1e-4 * scale.max(1.0), "t={t}: |Δ| {diff}");
            // The time value is actually used (not constant / ignored).
            if let Some(prev) = previous.replace(sampled.clone()) {
                let d = (&prev - &sampled).unwrap().abs().unwrap().max_all();
                assert!(d.unwrap().to_scalar::<f32>().unwrap() > 1e-4);
            }
        }
    }

    #[test]
    fn adaln_zero_starts_at_zero_velocity() {
        for mut c in variants() {
            c.adaln_zero = true;
            starts_at_zero_velocity(c);
        }
    }

    fn starts_at_zero_velocity(c: DitConfig) {
        let dev = Device::Cpu;
        let vm = DitPipeline::seeded_varmap(&c, 3, &dev).unwrap();
        let p = DitPipeline::from_varmap("t", c, &vm, &dev).unwrap();
        let x = Tensor::ones((1, 3, 16, 16), DType::F32, &dev).unwrap();
        let v = p.velocity(&x, &[0.5], &[vec![NULL_TOKEN]]).unwrap();
        assert_eq!(
            v.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            0.0
        );
    }

    /// The x0 head: a zero head means x̂0 = 0, so the returned velocity is
    /// `x_t / max(t, X0_MIN_T)`, row by row; and training and sampling forwards
    /// agree under this parameterisation too.
    #[test]
    fn x0_prediction_converts_the_head_to_a_velocity() {
        use crate::config::Prediction;
        let dev = Device::Cpu;
        let mut c = small();
        c.adaln_zero = true;
        c.prediction = Prediction::X0;
        let vm = DitPipeline::seeded_varmap(&c, 3, &dev).unwrap();
        let p = DitPipeline::from_varmap("t", c.clone(), &vm, &dev).unwrap();
        let x = Tensor::ones((2, 3, 16, 16), DType::F32, &dev).unwrap();
        let caps = vec![vec![NULL_TOKEN], vec![NULL_TOKEN]];
        let v = p.velocity(&x, &[0.5, 0.01], &caps).unwrap();
        let rows = v.flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
        assert!(rows[0].iter().all(|&a| (a - 2.0).abs() < 1e-5));
        assert!(rows[1].iter().all(|&a| (a - 20.0).abs() < 1e-3));

        training_and_sampling_forwards_agree(Prediction::X0, 0.3);
    }

    /// With random (not zero) weights and `prediction`, the training forward and
    /// the sampling forward give the same velocity at flow time `t`.
    fn training_and_sampling_forwards_agree(prediction: crate::config::Prediction, t: f64) {
        let dev = Device::Cpu;
        let mut r = small();
        r.prediction = prediction;
        let (train, infer) = training_and_sampling_pipelines(r, &dev);
        let x = Tensor::from_vec(
            fresco_pipeline::seed::gaussian_noise(2, 3 * 16 * 16),
            (1, 3, 16, 16),
            &dev,
        )
        .unwrap();
        let ids = train.tokenizer().tokenize("a red cat").ids;
        let enc = infer.text.encode(&ids, &dev).unwrap();
        let ctx = batch_context(&[(&enc, 1)], &dev).unwrap();
        let sampled = infer.dit.forward(&x, t, &ctx).unwrap();
        let trained = train.velocity(&x, &[t], &[ids]).unwrap();
        let diff = (sampled - trained).unwrap().abs().unwrap().max_all();
        assert!(diff.unwrap().to_scalar::<f32>().unwrap() < 1e-4);
    }

    /// The preconditioned head: a zero head returns `skip(t)·x_t`, row by row;
    /// at `t = 1` the skip copies the noise exactly; training and sampling
    /// forwards agree.
    #[test]
    fn preconditioned_head_adds_the_linear_estimate_of_the_velocity() {
        use crate::config::Prediction;
        let dev = Device::Cpu;
        let (skip_one, scale_one) = Prediction::preconditioning(1.0);
        assert!((skip_one - 1.0).abs() < 1e-12);
        assert!((scale_one - Prediction::SIGMA_DATA).abs() < 1e-12);
        let (skip_zero, scale_zero) = Prediction::preconditioning(0.0);
        assert!((skip_zero + 1.0).abs() < 1e-12);
        assert!((scale_zero - 1.0).abs() < 1e-12);

        let mut c = small();
        c.adaln_zero = true;
        c.prediction = Prediction::Preconditioned;
        let vm = DitPipeline::seeded_varmap(&c, 3, &dev).unwrap();
        let p = DitPipeline::from_varmap("t", c, &vm, &dev).unwrap();
        let x = Tensor::ones((2, 3, 16, 16), DType::F32, &dev).unwrap();
        let caps = vec![vec![NULL_TOKEN], vec![NULL_TOKEN]];
        let v = p.velocity(&x, &[1.0, 0.3], &caps).unwrap();
        let rows = v.flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
        let skip = Prediction::preconditioning(0.3).0 as f32;
        assert!(rows[0].iter().all(|&a| (a - 1.0).abs() < 1e-6));
        assert!(rows[1].iter().all(|&a| (a - skip).abs() < 1e-6));

        training_and_sampling_forwards_agree(Prediction::Preconditioned, 0.6);
    }

    #[test]
    fn incomplete_varmap_is_rejected() {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        assert!(matches!(
            DitPipeline::from_varmap("t", small(), &vm, &dev),
            Err(Error::Config(_))
        ));
    }
}
