//! The training loop: flow-matching velocity regression on `fresco_shapes`
//! samples with AdamW, warmup + cosine learning rate, caption dropout, structured
//! progress logs, periodic checkpoints and exact resume.
//!
//! Determinism: step `s` reads dataset samples `s·B .. s·B + B` and draws flow
//! times, noise and caption dropout from [`step_rng`]`(seed, s)`; model weights
//! start from `DitPipeline::seeded_varmap(config, init_seed(seed))` (or from a
//! saved model folder, [`Trainer::from_model`]). Given the
//! seed, the thread count (candle's CPU kernels split work per thread) and the
//! number of shards ([`TrainOptions::shards`]), a run is
//! reproducible, and a run resumed from a checkpoint equals an uninterrupted one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use fresco_dit::{DitConfig, DitPipeline};
use fresco_pipeline::splitmix64;
use fresco_shapes::{DEFAULT_LAYOUT_PERCENT, Dataset, Framing, Shape, Sizing, Split};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::checkpoint::{self, DataRecipe, OPTIMIZER_FILE, TrainState};
use crate::data::{CleanBatch, Noising, NoisyBatch, noisy_batch};
use crate::ema::{EMA_FILE, Ema};
use crate::error::{Error, Result, io_err};
use crate::optim::{AdamW, AdamWConfig};
use crate::schedule::{LogitNormalParams, TimeSampling, learning_rate, step_rng};

/// Model id written by [`Trainer::save_model`] users (the shipped model's name).
pub const MODEL_ID: &str = "fresco-shapes";
/// Name of the checkpoint directory inside the output directory.
pub const CHECKPOINT_DIR: &str = "checkpoint";

/// Everything that defines a training run except the architecture.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Output directory (model, checkpoint, summary).
    pub out: PathBuf,
    /// Total steps of the run (the schedule's length).
    pub steps: u64,
    /// Images per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate as a fraction of `lr`.
    pub min_lr_ratio: f64,
    /// Linear warmup steps.
    pub warmup: u64,
    /// Run seed (weights init, data order, noise).
    pub seed: u64,
    /// Training image side (multiple of the patch size, 16..).
    pub image_size: u32,
    /// Where a training shape goes when its caption names no position.
    pub framing: Framing,
    /// How large a training shape is when its caption names no size.
    pub sizing: Sizing,
    /// How often, in percent, a training caption names the size, and
    /// separately the position (see [`Dataset::with_layout_percent`]).
    pub layout_percent: u32,
    /// Shapes drawn more often than the rest, with how many times as often
    /// (see [`Dataset::with_shape_weight`]); unlisted shapes weigh 1.
    pub shape_weights: Vec<(Shape, u32)>,
    /// Probability of training a sample with the null caption.
    pub caption_dropout: f64,
    /// Distribution of flow times.
    pub time_sampling: TimeSampling,
    /// Location and scale of the logit-normal time distribution.
    pub logit_normal: LogitNormalParams,
    /// Log every this many steps (0: never).
    pub log_every: u64,
    /// Checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: u64,
    /// Use only dataset samples `0..n` (overfitting checks); `None`: unbounded.
    pub dataset_size: Option<u64>,
    /// Optimizer settings.
    pub optimizer: AdamWConfig,
    /// Keep an exponential moving average of the weights with this decay (see
    /// [`Ema`]) and save it as the model; `None`: save the raw weights.
    pub ema_decay: Option<f64>,
    /// Loss weight of foreground pixels relative to background pixels (1: plain
    /// MSE). Shapes cover a small part of each image, so plain MSE spends most
    /// of its signal on the background.
    pub foreground_weight: f64,
    /// Loss weight of the pixels along each shape's outline relative to the
    /// others (1: plain MSE). The outlines that tell one shape from another
    /// are a few percent of the pixels, so plain MSE learns them last.
    pub outline_weight: f64,
    /// Split each batch into this many equal parts whose forward and backward
    /// passes run in parallel threads (data parallelism). Best with
    /// `CANDLE_NUM_THREADS=1`, one core per part.
    pub shards: usize,
}

impl TrainOptions {
    /// Defaults for everything but the output directory.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            out: out.into(),
            steps: 1000,
            batch: 32,
            lr: 3e-4,
            min_lr_ratio: 0.1,
            warmup: 200,
            seed: 0,
            image_size: 32,
            framing: Framing::Anywhere,
            sizing: Sizing::Any,
            layout_percent: DEFAULT_LAYOUT_PERCENT,
            shape_weights: Vec::new(),
            caption_dropout: 0.1,
            time_sampling: TimeSampling::LogitNormal,
            logit_normal: LogitNormalParams::default(),
            log_every: 50,
            checkpoint_every: 500,
            dataset_size: None,
            optimizer: AdamWConfig::default(),
            ema_decay: None,
            foreground_weight: 1.0,
            outline_weight: 1.0,
            shards: 1,
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Options(m.to_owned()));
        if self.batch == 0 {
            return bad("batch must be > 0");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr must be > 0");
        }
        if !(0.0..=1.0).contains(&self.caption_dropout) {
            return bad("caption dropout must be in [0, 1]");
        }
        if self.dataset_size == Some(0) {
            return bad("dataset size must be > 0");
        }
        if self.shards == 0 || !self.batch.is_multiple_of(self.shards) {
            return bad("shards must be > 0 and divide the batch");
        }
        if !(self.foreground_weight > 0.0 && self.foreground_weight.is_finite()) {
            return bad("foreground weight must be > 0");
        }
        if !(self.outline_weight > 0.0 && self.outline_weight.is_finite()) {
            return bad("outline weight must be > 0");
        }
        let logit = self.logit_normal;
        if !(logit.location.is_finite() && logit.scale > 0.0 && logit.scale.is_finite()) {
            return bad("the logit-normal location must be finite and its scale > 0");
        }
        if self.ema_decay.is_some_and(|d| !(0.0..1.0).contains(&d)) {
            return bad("EMA decay must be in [0, 1)");
        }
        Ok(())
    }

    fn noising(&self) -> Noising {
        Noising {
            time_sampling: self.time_sampling,
            logit_normal: self.logit_normal,
            caption_dropout: self.caption_dropout,
            foreground_weight: self.foreground_weight,
            outline_weight: self.outline_weight,
        }
    }
}

/// Loss and gradients of batch rows `start .. start + len` of `nb`.
fn shard_loss_and_grads(
    pipeline: &DitPipeline,
    nb: &NoisyBatch,
    start: usize,
    len: usize,
) -> Result<(f32, GradStore)> {
    let rows = |t: &Tensor| t.narrow(0, start, len);
    let v = pipeline.velocity(
        &rows(&nb.x_t)?,
        &nb.t[start..start + len],
        &nb.captions[start..start + len],
    )?;
    let sq = (v - rows(&nb.target)?)?.sqr()?;
    let loss = match &nb.weights {
        // Weighted mean: Σ w·e² / Σ w, so the scale matches plain MSE.
        Some(w) => {
            let w = rows(w)?;
            (sq * &w)?.sum_all()?.broadcast_div(&w.sum_all()?)?
        }
        None => sq.mean_all()?,
    };
    let value = loss.to_scalar::<f32>()?;
    Ok((value, loss.backward()?))
}

/// The architecture saved in `dir/config.json` (a model folder or a checkpoint).
fn read_config(dir: &Path) -> Result<DitConfig> {
    let path = dir.join("config.json");
    let json = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    Ok(serde_json::from_str(&json)?)
}

/// Seed of the initial weights for run seed `seed`.
pub fn init_seed(seed: u64) -> u64 {
    splitmix64(seed ^ 0x696e_6974)
}

/// Result of one optimisation step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// The step just completed (1-based count of steps done).
    pub step: u64,
    /// Mean squared velocity error of the batch.
    pub loss: f32,
    /// Learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
}

/// Summary written to `training.json` at the end of [`Trainer::run`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSummary {
    /// Steps completed.
    pub steps: u64,
    /// Steps run in this process (less than `steps` after a resume).
    pub steps_this_run: u64,
    /// Smoothed loss at the end.
    pub loss_ema: Option<f64>,
    /// Wall-clock seconds of this process's steps.
    pub seconds: f64,
    /// Training throughput of this process.
    pub samples_per_second: f64,
    /// Trainable parameters.
    pub parameters: usize,
}

/// A model, its optimizer and the position in the run.
pub struct Trainer {
    opts: TrainOptions,
    varmap: VarMap,
    pipeline: DitPipeline,
    optimizer: AdamW,
    ema: Option<Ema>,
    dataset: Dataset,
    step: u64,
    loss_ema: Option<f64>,
}

impl Trainer {
    /// A fresh run with architecture `config`.
    pub fn new(opts: TrainOptions, config: DitConfig, device: &Device) -> Result<Self> {
        opts.check()?;
        let varmap = DitPipeline::seeded_varmap(&config, init_seed(opts.seed), device)?;
        Self::assemble(opts, config, varmap, 0, None, None, device)
    }

    /// A new run that starts from the weights of a saved model folder
    /// (`config.json` + `model.safetensors`, as [`Trainer::save_model`] writes
    /// them, e.g. `models/fresco-shapes`) instead of seeded random weights: a
    /// fresh optimizer and schedule, step 0, the folder's architecture. The
    /// moving average (with `opts.ema_decay`) starts from those weights.
    pub fn from_model(opts: TrainOptions, model_dir: &Path, device: &Device) -> Result<Self> {
        opts.check()?;
        let config = read_config(model_dir)?;
        let weights = model_dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(Error::Options(format!(
                "--init-from {}: no model.safetensors there",
                model_dir.display()
            )));
        }
        let mut varmap = DitPipeline::seeded_varmap(&config, init_seed(opts.seed), device)?;
        varmap.load(&weights)?;
        info!(model = %model_dir.display(), "starting from saved weights");
        Self::assemble(opts, config, varmap, 0, None, None, device)
    }

    /// Continues the run saved in `checkpoint` (architecture from its `config.json`).
    /// `opts` must agree with the checkpoint on seed, batch, image size, dataset size
    /// and the dataset options of its [`DataRecipe`] (checkpoints written before
    /// the recipe was recorded resume with a warning instead); with
    /// `opts.ema_decay` the checkpoint must hold the average ([`EMA_FILE`]).
    pub fn resume(opts: TrainOptions, checkpoint: &Path, device: &Device) -> Result<Self> {
        opts.check()?;
        checkpoint::check_dir(checkpoint)?;
        let state = TrainState::load(checkpoint)?;
        let mismatch = |what: &str| {
            Err(Error::Options(format!(
                "--{what} differs from the checkpoint being resumed"
            )))
        };
        if state.seed != opts.seed {
            return mismatch("seed");
        }
        if state.batch != opts.batch {
            return mismatch("batch");
        }
        if state.image_size != opts.image_size {
            return mismatch("image-size");
        }
        if state.dataset_size != opts.dataset_size {
            return mismatch("dataset-size");
        }
        let config = read_config(checkpoint)?;
        let mut varmap = DitPipeline::seeded_varmap(&config, init_seed(opts.seed), device)?;
        varmap.load(checkpoint.join("model.safetensors"))?;
        let optimizer_file = checkpoint.join(OPTIMIZER_FILE);
        info!(step = state.step, checkpoint = %checkpoint.display(), "resuming");
        let mut trainer = Self::assemble(
            opts,
            config,
            varmap,
            state.step,
            state.loss_ema,
            Some(&optimizer_file),
            device,
        )?;
        let given = DataRecipe::of(&trainer.dataset);
        match &state.data {
            Some(saved) => {
                let differences = saved.differences(&given);
                if !differences.is_empty() {
                    return Err(Error::Options(format!(
                        "the dataset options differ from the checkpoint being resumed: {}; \
                         resume with the checkpoint's options, or start a new run from its \
                         weights with --init-from",
                        differences.join(", ")
                    )));
                }
            }
            None => warn!(
                checkpoint = %checkpoint.display(),
                "the checkpoint does not record its dataset options; they are not checked"
            ),
        }
        if let Some(ema) = &mut trainer.ema {
            let path = checkpoint.join(EMA_FILE);
            if !path.is_file() {
                return Err(Error::Options(format!(
                    "--ema-decay given but {} has no {EMA_FILE}",
                    checkpoint.display()
                )));
            }
            ema.load(&path)?;
        }
        Ok(trainer)
    }

    fn assemble(
        opts: TrainOptions,
        config: DitConfig,
        varmap: VarMap,
        step: u64,
        loss_ema: Option<f64>,
        optimizer_state: Option<&Path>,
        device: &Device,
    ) -> Result<Self> {
        if !(opts.image_size as usize).is_multiple_of(config.patch_size) {
            return Err(Error::Options(format!(
                "image size {} is not a multiple of the patch size {}",
                opts.image_size, config.patch_size
            )));
        }
        let pipeline = DitPipeline::from_varmap(MODEL_ID, config, &varmap, device)?;
        let mut optimizer = AdamW::new(&varmap, opts.optimizer)?;
        if let Some(path) = optimizer_state {
            optimizer.load(path, step)?;
        }
        let mut dataset = Dataset::new(opts.seed, opts.image_size, Split::Train)?
            .with_framing(opts.framing)
            .with_sizing(opts.sizing)
            .with_layout_percent(opts.layout_percent)?;
        for &(shape, weight) in &opts.shape_weights {
            dataset = dataset.with_shape_weight(shape, weight)?;
        }
        let ema = opts.ema_decay.map(|d| Ema::new(&varmap, d)).transpose()?;
        Ok(Self {
            opts,
            varmap,
            pipeline,
            optimizer,
            ema,
            dataset,
            step,
            loss_ema,
        })
    }

    /// Steps completed.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The model being trained (shares weights with the optimizer's variables).
    pub fn pipeline(&self) -> &DitPipeline {
        &self.pipeline
    }

    /// The options of the run.
    pub fn options(&self) -> &TrainOptions {
        &self.opts
    }

    /// Number of trainable scalars.
    pub fn parameter_count(&self) -> usize {
        self.varmap.all_vars().iter().map(|v| v.elem_count()).sum()
    }

    /// Dataset sample indices of step `step`.
    pub fn batch_indices(&self, step: u64) -> Vec<u64> {
        let b = self.opts.batch as u64;
        (0..b)
            .map(|i| {
                let k = step * b + i;
                self.opts.dataset_size.map_or(k, |n| k % n)
            })
            .collect()
    }

    /// The batch's loss and its gradients. With `shards > 1` the batch is split
    /// into equal parts whose forward and backward passes run on their own
    /// threads; the loss and the gradients are the mean over the parts, which
    /// is the whole batch's mean (up to float rounding).
    fn loss_and_grads(&self, nb: &NoisyBatch) -> Result<(f32, GradStore)> {
        let shards = self.opts.shards;
        if shards <= 1 {
            return shard_loss_and_grads(&self.pipeline, nb, 0, nb.t.len());
        }
        let per = nb.t.len() / shards;
        let results: Vec<Result<(f32, GradStore)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..shards)
                .map(|k| {
                    scope.spawn(move || shard_loss_and_grads(&self.pipeline, nb, k * per, per))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Options("a training shard panicked".into())))
                })
                .collect()
        });
        let mut parts = results.into_iter().collect::<Result<Vec<_>>>()?.into_iter();
        let Some((mut loss, mut grads)) = parts.next() else {
            return Err(Error::Options("no training shard ran".into()));
        };
        let rest: Vec<_> = parts.collect();
        let scale = 1.0 / shards as f64;
        for var in self.varmap.all_vars() {
            let Some(mut sum) = grads.remove(var.as_tensor()) else {
                continue;
            };
            for (_, other) in &rest {
                if let Some(g) = other.get(var.as_tensor()) {
                    sum = (sum + g)?;
                }
            }
            grads.insert(var.as_tensor(), (sum * scale)?);
        }
        for (l, _) in &rest {
            loss += l;
        }
        Ok((loss * scale as f32, grads))
    }

    /// Runs one optimisation step.
    pub fn train_step(&mut self) -> Result<StepStats> {
        let clean = CleanBatch::from_dataset(&self.dataset, &self.batch_indices(self.step))?;
        let mut rng = step_rng(self.opts.seed, self.step);
        let nb = noisy_batch(
            &clean,
            self.pipeline.tokenizer(),
            self.opts.noising(),
            &mut rng,
            self.pipeline.device(),
        )?;
        let (value, grads) = self.loss_and_grads(&nb)?;
        if !value.is_finite() {
            return Err(Error::Diverged {
                step: self.step,
                loss: value,
            });
        }
        let o = &self.opts;
        let lr = learning_rate(self.step, o.steps, o.warmup, o.lr, o.min_lr_ratio);
        let grad_norm = self.optimizer.step(&grads, lr)?;
        self.step += 1;
        if let Some(ema) = &mut self.ema {
            ema.update(&self.varmap, self.step)?;
        }
        self.loss_ema = Some(match self.loss_ema {
            Some(e) => 0.98 * e + 0.02 * f64::from(value),
            None => f64::from(value),
        });
        Ok(StepStats {
            step: self.step,
            loss: value,
            lr,
            grad_norm,
        })
    }

    /// Loss of the current model on `clean` with noise, flow times (uniform) and
    /// captions drawn from `seed` only, without dropout: a fixed yardstick.
    pub fn loss_on(&self, clean: &CleanBatch, seed: u64) -> Result<f32> {
        let noising = Noising {
            time_sampling: TimeSampling::Uniform,
            logit_normal: LogitNormalParams::default(),
            caption_dropout: 0.0,
            foreground_weight: 1.0,
            outline_weight: 1.0,
        };
        let mut rng = step_rng(seed, u64::MAX);
        let nb = noisy_batch(
            clean,
            self.pipeline.tokenizer(),
            noising,
            &mut rng,
            self.pipeline.device(),
        )?;
        let v = self.pipeline.velocity(&nb.x_t, &nb.t, &nb.captions)?;
        Ok((v - &nb.target)?
            .sqr()?
            .mean_all()?
            .detach()
            .to_scalar::<f32>()?)
    }

    /// Writes a checkpoint (raw model, optimizer moments, weight average if any,
    /// state) to `dir`, atomically.
    pub fn save_checkpoint(&self, dir: &Path) -> Result<()> {
        checkpoint::write_atomically(dir, |tmp| {
            self.pipeline.save(tmp)?;
            self.optimizer.save(&tmp.join(OPTIMIZER_FILE))?;
            if let Some(ema) = &self.ema {
                ema.save(&tmp.join(EMA_FILE))?;
            }
            TrainState {
                step: self.step,
                seed: self.opts.seed,
                batch: self.opts.batch,
                image_size: self.opts.image_size,
                dataset_size: self.opts.dataset_size,
                loss_ema: self.loss_ema,
                data: Some(DataRecipe::of(&self.dataset)),
            }
            .save(tmp)
        })
    }

    /// Writes `dir/config.json` + `dir/model.safetensors` (loadable by
    /// `DitPipeline::from_dir`): the weight average when EMA is on, else the raw weights.
    pub fn save_model(&self, dir: &Path) -> Result<()> {
        match &self.ema {
            Some(ema) => Ok(self.ema_pipeline(ema)?.save(dir)?),
            None => Ok(self.pipeline.save(dir)?),
        }
    }

    /// The model with the averaged weights (`None` without EMA), e.g. for evaluation.
    pub fn ema_model(&self) -> Result<Option<DitPipeline>> {
        self.ema.as_ref().map(|e| self.ema_pipeline(e)).transpose()
    }

    fn ema_pipeline(&self, ema: &Ema) -> Result<DitPipeline> {
        Ok(DitPipeline::from_weights(
            MODEL_ID,
            self.pipeline.config().clone(),
            ema.weights().clone(),
            self.pipeline.device(),
        )?)
    }

    /// Trains up to `opts.steps`, logging and checkpointing on the way, then writes
    /// the model and a checkpoint to `opts.out`, and `training.json`.
    pub fn run(&mut self) -> Result<TrainSummary> {
        let out = self.opts.out.clone();
        std::fs::create_dir_all(&out).map_err(io_err(&out))?;
        let ckpt = out.join(CHECKPOINT_DIR);
        let parameters = self.parameter_count();
        let start_step = self.step;
        info!(
            parameters,
            start_step,
            steps = self.opts.steps,
            batch = self.opts.batch,
            image_size = self.opts.image_size,
            "training"
        );
        let started = Instant::now();
        let mut window = (Instant::now(), self.step);
        while self.step < self.opts.steps {
            let stats = self.train_step()?;
            let o = &self.opts;
            if o.log_every > 0 && (stats.step % o.log_every == 0 || stats.step == o.steps) {
                let secs = window.0.elapsed().as_secs_f64().max(1e-9);
                let samples = (stats.step - window.1) as f64 * o.batch as f64;
                let per_step = secs / (stats.step - window.1).max(1) as f64;
                info!(
                    step = stats.step,
                    total = o.steps,
                    loss_ema = self.loss_ema.unwrap_or(f64::NAN),
                    loss = stats.loss,
                    lr = stats.lr,
                    grad_norm = stats.grad_norm,
                    samples_per_s = samples / secs,
                    eta_s = per_step * (o.steps - stats.step) as f64,
                    "step"
                );
                window = (Instant::now(), stats.step);
            }
            if o.checkpoint_every > 0
                && stats.step % o.checkpoint_every == 0
                && stats.step < o.steps
            {
                self.save_checkpoint(&ckpt)?;
                info!(step = stats.step, dir = %ckpt.display(), "checkpoint written");
            }
        }
        self.save_checkpoint(&ckpt)?;
        self.save_model(&out)?;
        let seconds = started.elapsed().as_secs_f64();
        let steps_this_run = self.step - start_step;
        let summary = TrainSummary {
            steps: self.step,
            steps_this_run,
            loss_ema: self.loss_ema,
            seconds,
            samples_per_second: steps_this_run as f64 * self.opts.batch as f64 / seconds.max(1e-9),
            parameters,
        };
        let path = out.join("training.json");
        std::fs::write(&path, serde_json::to_string_pretty(&summary)?).map_err(io_err(&path))?;
        info!(
            steps = summary.steps,
            seconds = summary.seconds,
            loss_ema = summary.loss_ema.unwrap_or(f64::NAN),
            out = %out.display(),
            "training finished"
        );
        Ok(summary)
    }
}
