//! `fresco-train`: trains the `fresco-shapes` DiT on procedural captioned shapes
//! and writes `OUT/config.json` + `OUT/model.safetensors` (plus `OUT/checkpoint/`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use fresco_dit::Prediction;
use fresco_pipeline::parse_device;
use fresco_shapes::{Dataset, Framing, Shape, Sizing};
use fresco_train::{AdamWConfig, LogitNormalParams, Preset, TimeSampling, TrainOptions, Trainer};
use tracing_subscriber::EnvFilter;

/// `--unnamed-position` values (see [`Framing`]).
#[derive(Clone, Copy, ValueEnum)]
enum UnnamedPosition {
    /// In any of the nine cells, as drawn.
    Anywhere,
    /// In the centre: a caption without a position word means a centred shape.
    Centre,
}

/// `--unnamed-size` values (see [`Sizing`]).
#[derive(Clone, Copy, ValueEnum)]
enum UnnamedSize {
    /// Any of the three sizes, as drawn.
    Any,
    /// Large: a caption without a size word means a shape that fills its frame.
    Large,
}

/// `--prediction` values (see [`Prediction`]).
#[derive(Clone, Copy, ValueEnum)]
enum PredictionArg {
    /// Predict the velocity `ε − x0` (the default).
    Velocity,
    /// Predict the clean image `x0`.
    X0,
    /// Predict the unit-variance residual of the best linear estimate of the
    /// velocity from `x_t` (EDM-style preconditioning).
    Preconditioned,
}

#[derive(Parser)]
#[command(
    name = "fresco-train",
    version,
    about = "Train the fresco-shapes DiT (flow matching, CPU)"
)]
struct Args {
    /// Output directory (model, checkpoint, training.json).
    #[arg(long)]
    out: PathBuf,
    /// Total optimisation steps (length of the learning-rate schedule).
    #[arg(long, default_value_t = 1000)]
    steps: u64,
    /// Images per step.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Peak learning rate (AdamW).
    #[arg(long, default_value_t = 3e-4)]
    lr: f64,
    /// Final learning rate as a fraction of --lr (cosine decay).
    #[arg(long, default_value_t = 0.1)]
    min_lr_ratio: f64,
    /// Linear warmup steps.
    #[arg(long, default_value_t = 200)]
    warmup: u64,
    /// AdamW decoupled weight decay.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    /// Clip the global gradient norm (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    max_grad_norm: f64,
    /// Run seed: initial weights, data order, noise, flow times, dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Training image side in pixels (multiple of the patch size 4).
    #[arg(long, default_value_t = 32)]
    image_size: u32,
    /// Where a training shape goes when its caption names no position:
    /// anywhere (as drawn) or centre (a caption without a position word
    /// means a centred shape).
    #[arg(long, value_enum, default_value = "anywhere")]
    unnamed_position: UnnamedPosition,
    /// How large a training shape is when its caption names no size: any (as
    /// drawn) or large (a caption without a size word means a large shape).
    #[arg(long, value_enum, default_value = "any")]
    unnamed_size: UnnamedSize,
    /// How often, in percent, a training caption names the size, and
    /// separately the position (0 with centre and large: every sample is a
    /// large centred shape whose caption names neither).
    #[arg(long, default_value_t = fresco_shapes::DEFAULT_LAYOUT_PERCENT,
          value_parser = clap::value_parser!(u32).range(0..=100))]
    layout_words_percent: u32,
    /// Draw a shape's training pictures N times as often as the others'
    /// (`star=3`; repeat the flag for more shapes, N in 1..=16).
    #[arg(long = "shape-weight", value_name = "SHAPE=N", value_parser = parse_shape_weight)]
    shape_weights: Vec<(Shape, u32)>,
    /// Probability of training on the empty (null) caption, for guidance.
    #[arg(long, default_value_t = 0.1)]
    caption_dropout: f64,
    /// Distribution of training flow times.
    #[arg(long, value_enum, default_value = "logit-normal")]
    t_sampling: TimeSampling,
    /// Logit-normal sampling: mean of logit(t); above 0 favours high noise.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    t_location: f64,
    /// Logit-normal sampling: standard deviation of logit(t).
    #[arg(long, default_value_t = 1.0)]
    t_scale: f64,
    /// Architecture (ignored with --resume and --init-from, which use their
    /// folder's config.json).
    #[arg(long, value_enum, default_value = "small")]
    config: Preset,
    /// Override the preset's patch size (ignored with --resume and --init-from).
    #[arg(long)]
    patch_size: Option<usize>,
    /// Override the preset's transformer depth (ignored with --resume and --init-from).
    #[arg(long)]
    depth: Option<usize>,
    /// Override the preset's hidden width (ignored with --resume and --init-from).
    #[arg(long)]
    hidden: Option<usize>,
    /// Override the preset's MLP width as a multiple of the hidden width
    /// (ignored with --resume and --init-from).
    #[arg(long)]
    mlp_ratio: Option<f64>,
    /// Width of the pixel refiner (two 3×3 convolutions after the final
    /// projection; 0: none). Ignored with --resume and --init-from.
    #[arg(long, default_value_t = 0)]
    refiner_channels: usize,
    /// Width of the caption layout MLP (a learned function of each patch's
    /// position and the caption, added to the patch tokens; 0: none).
    /// Ignored with --resume and --init-from.
    #[arg(long, default_value_t = 0)]
    layout_hidden: usize,
    /// Add a learned embedding per patch-grid cell to the sin-cos positions.
    /// Ignored with --resume and --init-from.
    #[arg(long)]
    learned_positions: bool,
    /// Weight of foreground pixels in the loss relative to background pixels
    /// (1: plain MSE).
    #[arg(long, default_value_t = 1.0)]
    foreground_weight: f64,
    /// Weight of the pixels along each shape's outline (a band about three
    /// pixels wide) in the loss relative to the other pixels (1: plain MSE).
    #[arg(long, default_value_t = 1.0)]
    outline_weight: f64,
    /// Split each batch into N parts trained in parallel threads (run with
    /// CANDLE_NUM_THREADS=1 so each part keeps to one core).
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Output head: the velocity, the clean image x0 converted to a velocity,
    /// or the preconditioned residual (all trained on the same velocity loss).
    /// Ignored with --resume and --init-from.
    #[arg(long, value_enum, default_value = "velocity")]
    prediction: PredictionArg,
    /// Log every N steps.
    #[arg(long, default_value_t = 25)]
    log_every: u64,
    /// Write OUT/checkpoint every N steps (0: only at the end).
    #[arg(long, default_value_t = 250)]
    checkpoint_every: u64,
    /// Continue from a checkpoint directory (e.g. OUT/checkpoint).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Start a new run from the weights of a saved model folder (config.json +
    /// model.safetensors, e.g. models/fresco-shapes) with a fresh optimizer and
    /// schedule; the folder's architecture is used.
    #[arg(long, conflicts_with = "resume")]
    init_from: Option<PathBuf>,
    /// Train on dataset samples 0..N only (overfitting / smoke tests).
    #[arg(long)]
    dataset_size: Option<u64>,
    /// Save an exponential moving average of the weights with this decay (e.g.
    /// 0.995) as the model; must be given again with --resume.
    #[arg(long)]
    ema_decay: Option<f64>,
    /// Where to train: cpu, cuda or cuda:N (cuda needs a build with
    /// `--features cuda`; keep `--shards 1` there, the GPU parallelises the
    /// batch itself).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Emit logs as JSON lines.
    #[arg(long)]
    log_json: bool,
}

/// Parses `--shape-weight SHAPE=N`.
fn parse_shape_weight(arg: &str) -> std::result::Result<(Shape, u32), String> {
    let (word, weight) = arg
        .split_once('=')
        .ok_or_else(|| format!("expected SHAPE=N (e.g. star=3), got {arg:?}"))?;
    let shape = Shape::from_word(word.trim()).ok_or_else(|| {
        let known: Vec<&str> = Shape::ALL.iter().map(|s| s.word()).collect();
        format!(
            "unknown shape {word:?} (expected one of {})",
            known.join(", ")
        )
    })?;
    let max = Dataset::MAX_SHAPE_WEIGHT;
    let weight = weight
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|w| (1..=max).contains(w))
        .ok_or_else(|| format!("weight {weight:?} must be a whole number in 1..={max}"))?;
    Ok((shape, weight))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if args.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let opts = TrainOptions {
        out: args.out.clone(),
        steps: args.steps,
        batch: args.batch,
        lr: args.lr,
        min_lr_ratio: args.min_lr_ratio,
        warmup: args.warmup,
        seed: args.seed,
        image_size: args.image_size,
        framing: match args.unnamed_position {
            UnnamedPosition::Anywhere => Framing::Anywhere,
            UnnamedPosition::Centre => Framing::CentreUnlessNamed,
        },
        sizing: match args.unnamed_size {
            UnnamedSize::Any => Sizing::Any,
            UnnamedSize::Large => Sizing::LargeUnlessNamed,
        },
        layout_percent: args.layout_words_percent,
        shape_weights: args.shape_weights,
        caption_dropout: args.caption_dropout,
        time_sampling: args.t_sampling,
        logit_normal: LogitNormalParams {
            location: args.t_location,
            scale: args.t_scale,
        },
        log_every: args.log_every,
        checkpoint_every: args.checkpoint_every,
        dataset_size: args.dataset_size,
        optimizer: AdamWConfig {
            weight_decay: args.weight_decay,
            max_grad_norm: (args.max_grad_norm > 0.0).then_some(args.max_grad_norm),
            ..AdamWConfig::default()
        },
        ema_decay: args.ema_decay,
        foreground_weight: args.foreground_weight,
        outline_weight: args.outline_weight,
        shards: args.shards,
    };
    let device = parse_device(&args.device)?;
    let mut trainer = match (&args.resume, &args.init_from) {
        (Some(ckpt), _) => Trainer::resume(opts, ckpt, &device)
            .with_context(|| format!("resuming from {}", ckpt.display()))?,
        (None, Some(dir)) => Trainer::from_model(opts, dir, &device)
            .with_context(|| format!("starting from {}", dir.display()))?,
        (None, None) => {
            let mut config = args.config.config();
            if let Some(p) = args.patch_size {
                config.patch_size = p;
            }
            if let Some(d) = args.depth {
                config.depth = d;
            }
            if let Some(h) = args.hidden {
                config.hidden_size = h;
            }
            if let Some(r) = args.mlp_ratio {
                config.mlp_ratio = r;
            }
            config.refiner_channels = args.refiner_channels;
            config.layout_hidden = args.layout_hidden;
            config.learned_positions = args.learned_positions;
            config.prediction = match args.prediction {
                PredictionArg::Velocity => Prediction::Velocity,
                PredictionArg::X0 => Prediction::X0,
                PredictionArg::Preconditioned => Prediction::Preconditioned,
            };
            Trainer::new(opts, config, &device).context("building the model")?
        }
    };
    let summary = trainer.run().context("training")?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
