//! `fresco-diffusers-bench`: measures fresco-diffusers on the CPU (f32) for one diffusers-layout model
//! folder and prints the result as one JSON line.
//!
//! What it times, with the same keys as `bench/diffusers_bench.py` (which runs the same
//! folder through diffusers on PyTorch so `bench/run.sh` can print ratios):
//! - `unet_ms_*`: one UNet forward at batch 2 (the negative and positive halves of
//!   classifier-free guidance), after `--warmup` untimed calls, over `--reps` calls;
//! - `text_encode_ms_*` and `vae_decode_ms_*`: the prompt encoding and the decode of one
//!   image, the pipeline's two other parts;
//! - `pipeline_s_*`: one whole image (text encoding, `--steps` guided sampler steps, VAE
//!   decode), over `--pipeline-reps` runs after `--warmup` untimed ones;
//! - `rss_after_load_mib` / `peak_rss_mib`: `VmRSS` after loading and `VmHWM` at the end,
//!   from `/proc/self/status` (Linux; `null` elsewhere).
//!
//! `--config mid --out DIR` first writes a mid-size, SD-1.5-shaped folder with seeded
//! random weights (UNet `[128, 256, 512]`, 2 resnets per level, 8 heads; VAE
//! `[64, 128, 256, 256]`; a 6-layer, 512-wide CLIP text encoder; DDIM), so both
//! implementations load the very same files; `--config sd15` writes one at SD 1.5's own
//! sizes (UNet `[320, 640, 1280, 1280]`, VAE `[128, 256, 512, 512]`, CLIP ViT-L; 512×512).
//! `--generate-only` stops after writing it,
//! which keeps the generator's memory out of a later run's peak RSS.
//!
//! Threads: candle reads `CANDLE_NUM_THREADS` / `RAYON_NUM_THREADS` from the environment;
//! the count in effect is reported as `threads`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use candle_core::{DType, Device, Tensor};
use clap::{Parser, ValueEnum};
use fresco_diffusers::unet::{TextTime, UnetConditioning};
use fresco_diffusers::{GenerateParams, Prompt, SdPipeline, UnetBackend};
use serde_json::{Value, json};

/// Benchmark fresco-diffusers on one model folder (CPU, f32) and print one JSON line.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// A diffusers-layout model folder (`text_encoder/`, `unet/`, `vae/`, `scheduler/`;
    /// SDXL adds `text_encoder_2/`). With `--config`, the folder is written to `--out`.
    folder: Option<PathBuf>,
    /// Write a random-weight folder of this size to `--out` and benchmark it.
    #[arg(long, env = "FRESCO_BENCH_CONFIG", requires = "out")]
    config: Option<Preset>,
    /// Where `--config` writes its folder.
    #[arg(long, env = "FRESCO_BENCH_OUT")]
    out: Option<PathBuf>,
    /// Rewrite the `--config` folder even when it already exists.
    #[arg(long)]
    force: bool,
    /// Only write the `--config` folder; time nothing.
    #[arg(long)]
    generate_only: bool,
    /// Seed of the generated weights (and of the benchmark's latents).
    #[arg(long, env = "FRESCO_BENCH_SEED", default_value_t = 0)]
    seed: u64,
    /// Label of the model in the report (default: the folder's name).
    #[arg(long)]
    name: Option<String>,
    /// Image width in pixels (default: the model's native size).
    #[arg(long)]
    width: Option<usize>,
    /// Image height in pixels (default: the model's native size).
    #[arg(long)]
    height: Option<usize>,
    /// Sampler steps of a pipeline run.
    #[arg(long, env = "FRESCO_BENCH_STEPS", default_value_t = 10)]
    steps: usize,
    /// Classifier-free guidance scale of a pipeline run (above 1, so the UNet batch is 2).
    #[arg(long, default_value_t = 7.5)]
    guidance: f64,
    /// Untimed runs before timing (UNet calls and whole pipeline runs each).
    #[arg(long, env = "FRESCO_BENCH_WARMUP", default_value_t = 1)]
    warmup: usize,
    /// Timed UNet calls (and text encodings, VAE decodes).
    #[arg(long, env = "FRESCO_BENCH_REPS", default_value_t = 10)]
    reps: usize,
    /// Timed whole pipeline runs.
    #[arg(long, env = "FRESCO_BENCH_PIPELINE_REPS", default_value_t = 3)]
    pipeline_reps: usize,
    /// The UNet implementation.
    #[arg(long, value_enum, default_value_t = Backend::Native)]
    backend: Backend,
}

/// Sizes `--config` can generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Preset {
    /// SD-1.5-shaped at about a sixth of its widths, 256×256 native.
    Mid,
    /// SD 1.5's own sizes: UNet `[320, 640, 1280, 1280]`, VAE `[128, 256, 512, 512]`, the
    /// 12-layer, 768-wide CLIP ViT-L text encoder; 512×512 native.
    Sd15,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    /// fresco's own UNet for every config.
    Native,
    /// candle-transformers' UNet for SD 1.x/2.x, fresco's own for SDXL.
    Candle,
}

impl From<Backend> for UnetBackend {
    fn from(b: Backend) -> Self {
        match b {
            Backend::Native => UnetBackend::Native,
            Backend::Candle => UnetBackend::Candle,
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.reps > 0, "--reps must be at least 1");
    ensure!(args.pipeline_reps > 0, "--pipeline-reps must be at least 1");
    ensure!(args.steps > 0, "--steps must be at least 1");
    ensure!(
        args.guidance > 1.0,
        "--guidance must be above 1 (the benchmark times guided sampling)"
    );
    let folder = match (args.config, &args.out, &args.folder) {
        (Some(preset), Some(out), None) => {
            if args.force || !out.join("unet/config.json").is_file() {
                let started = Instant::now();
                random_folder::write(preset, out, args.seed)?;
                println!(
                    "{}",
                    json!({
                        "event": "generated",
                        "config": format!("{preset:?}").to_lowercase(),
                        "folder": out,
                        "seed": args.seed,
                        "seconds": started.elapsed().as_secs_f64(),
                    })
                );
            }
            out.clone()
        }
        (None, _, Some(folder)) => folder.clone(),
        (Some(_), _, Some(_)) => bail!("give either a folder or --config, not both"),
        (Some(_), None, None) => bail!("--config needs --out"),
        (None, _, None) => bail!("give a model folder or --config mid|sd15 --out DIR"),
    };
    if args.generate_only {
        return Ok(());
    }
    let report = bench(&args, &folder)?;
    println!("{report}");
    Ok(())
}

/// Loads `folder` and times it as [`Args`] asks.
fn bench(args: &Args, folder: &Path) -> Result<Value> {
    let device = Device::Cpu;
    let started = Instant::now();
    let pipe = SdPipeline::load_with(folder, &device, DType::F32, args.backend.into())
        .with_context(|| format!("loading {}", folder.display()))?;
    let load_s = started.elapsed().as_secs_f64();
    let rss_after_load = memory_mib("VmRSS");

    let (native_w, native_h) = pipe.default_size();
    let (width, height) = (
        args.width.unwrap_or(native_w),
        args.height.unwrap_or(native_h),
    );
    let f = pipe.vae_scale_factor();
    ensure!(
        width > 0 && height > 0 && width.is_multiple_of(f) && height.is_multiple_of(f),
        "width and height must be positive multiples of {f}"
    );
    let prompt = Prompt::Tokens(bench_token_ids(&pipe));
    let sdxl = pipe.unet().config().text_time;

    // The conditioning a guided step sees: negative (the empty prompt; zeros for SDXL,
    // as diffusers does) then positive.
    let encode = || -> Result<(Tensor, Option<Tensor>)> {
        let (cond, pooled) = pipe.encode_prompt(&prompt)?;
        let (uncond, uncond_pooled) = if sdxl {
            (
                cond.zeros_like()?,
                pooled.as_ref().map(Tensor::zeros_like).transpose()?,
            )
        } else {
            let c = pipe.text_encoder().config();
            pipe.encode_prompt(&Prompt::Tokens(vec![c.bos_token_id, c.eos_token_id]))?
        };
        let context = Tensor::cat(&[uncond, cond], 0)?;
        let pooled = match (uncond_pooled, pooled) {
            (Some(u), Some(c)) => Some(Tensor::cat(&[u, c], 0)?),
            _ => None,
        };
        Ok((context, pooled))
    };
    let (context, pooled) = encode()?;
    let time_ids = match &pooled {
        Some(p) => {
            let (h, w) = (height as f32, width as f32);
            Some(Tensor::new(&[[h, w, 0.0, 0.0, h, w]], &device)?.repeat((p.dim(0)?, 1))?)
        }
        None => None,
    };
    let latent_shape = (
        2,
        pipe.unet().config().raw.in_channels,
        height / f,
        width / f,
    );
    let mut rng = fresco_diffusers::noise::image_rng(args.seed, 0);
    let latents = fresco_schedulers::randn_like(
        &Tensor::zeros(latent_shape, DType::F32, &device)?,
        &mut rng,
    )?;
    let cond = UnetConditioning {
        encoder_hidden_states: &context,
        text_time: match (&pooled, &time_ids) {
            (Some(text_embeds), Some(time_ids)) => Some(TextTime {
                text_embeds,
                time_ids,
            }),
            _ => None,
        },
    };
    let unet_ms = time_ms(args.warmup, args.reps, || {
        pipe.unet().forward(&latents, 500.0, &cond)?;
        Ok(())
    })?;
    let text_encode_ms = time_ms(args.warmup, args.reps, || {
        encode()?;
        Ok(())
    })?;
    let one_latent = latents.narrow(0, 0, 1)?;
    let vae_decode_ms = time_ms(args.warmup, args.reps, || {
        pipe.vae().decode(&one_latent)?;
        Ok(())
    })?;

    let mut params = GenerateParams::new(prompt.clone());
    params.guidance_scale = args.guidance;
    params.steps = args.steps;
    params.width = Some(width);
    params.height = Some(height);
    params.seed = args.seed;
    let pipeline_ms = time_ms(args.warmup, args.pipeline_reps, || {
        pipe.generate_tensor(&params)?;
        Ok(())
    })?;
    let sampler = pipe
        .scheduler()
        .default_kind
        .map_or_else(|| "ddim".to_string(), |k| k.to_string());

    let name = args.name.clone().unwrap_or_else(|| {
        folder.file_name().map_or_else(
            || folder.display().to_string(),
            |n| n.to_string_lossy().into(),
        )
    });
    Ok(json!({
        "event": "result",
        "impl": "fresco-diffusers",
        "model": name,
        "folder": folder,
        "config": args.config.map(|p| format!("{p:?}").to_lowercase()),
        "sdxl": sdxl,
        "backend": format!("{:?}", args.backend).to_lowercase(),
        "build": if cfg!(debug_assertions) { "dev" } else { "release" },
        "device": "cpu",
        "dtype": "f32",
        "threads": candle_core::utils::get_num_threads(),
        "width": width,
        "height": height,
        "latent": [latent_shape.1, latent_shape.2, latent_shape.3],
        "steps": args.steps,
        "guidance": args.guidance,
        "sampler": sampler,
        "warmup": args.warmup,
        "reps": args.reps,
        "pipeline_reps": args.pipeline_reps,
        "unet_batch": latent_shape.0,
        "load_s": load_s,
        "unet_ms_median": median(&unet_ms),
        "unet_ms_min": min(&unet_ms),
        "unet_ms": unet_ms,
        "text_encode_ms_median": median(&text_encode_ms),
        "vae_decode_ms_median": median(&vae_decode_ms),
        "pipeline_s_median": median(&pipeline_ms) / 1000.0,
        "pipeline_s_min": min(&pipeline_ms) / 1000.0,
        "rss_after_load_mib": rss_after_load,
        "peak_rss_mib": memory_mib("VmHWM"),
    }))
}

/// The prompt both implementations encode: begin, eight fixed ids inside the
/// vocabulary, end (the encoder pads it to its sequence length).
/// `bench/diffusers_bench.py` builds the same ids.
fn bench_token_ids(pipe: &SdPipeline) -> Vec<u32> {
    let c = pipe.text_encoder().config();
    let span = (c.vocab_size as u32).saturating_sub(2).max(1);
    let mut ids = vec![c.bos_token_id];
    ids.extend((1..=8u32).map(|i| (17 * i + 5) % span));
    ids.push(c.eos_token_id);
    ids
}

/// Runs `f` `warmup` times untimed, then `reps` times, returning each timed run in ms.
fn time_ms(warmup: usize, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        f()?;
    }
    (0..reps)
        .map(|_| {
            let started = Instant::now();
            f()?;
            Ok(started.elapsed().as_secs_f64() * 1000.0)
        })
        .collect()
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn min(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::INFINITY, f64::min)
}

/// A `kB` field of `/proc/self/status` in MiB (`VmHWM`: peak resident set size).
fn memory_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A diffusers-layout folder with seeded random weights, written so that both fresco-diffusers
/// and diffusers load it: the tensor names and shapes are the ones candle-transformers'
/// UNet and VAE and a CLIP text encoder ask for (diffusers' and transformers' names),
/// recorded while building each model on a [`SimpleBackend`] that makes every tensor up.
mod random_folder {
    use super::*;
    use candle_core::Shape;
    use candle_nn::var_builder::SimpleBackend;
    use candle_nn::{Init, VarBuilder};
    use candle_transformers::models::stable_diffusion::unet_2d::UNet2DConditionModel;
    use candle_transformers::models::stable_diffusion::vae::{AutoEncoderKL, AutoEncoderKLConfig};
    use fresco_diffusers::unet_config::UnetConfig;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The diffusers version the written configs name.
    const DIFFUSERS_VERSION: &str = "0.42.1";

    /// Writes `preset` into `out` (created if missing) with weights seeded by `seed`.
    pub fn write(preset: super::Preset, out: &Path, seed: u64) -> Result<()> {
        match preset {
            super::Preset::Mid => write_folder(out, seed, &mid()),
            super::Preset::Sd15 => write_folder(out, seed, &sd15()),
        }
    }

    /// What a generated folder is made of.
    struct FolderSpec {
        unet: Value,
        vae_channels: Vec<usize>,
        vae_sample_size: usize,
        clip: ClipSpec,
    }

    /// A CLIP text encoder's sizes.
    #[derive(Debug, Clone, Copy)]
    struct ClipSpec {
        hidden: usize,
        intermediate: usize,
        layers: usize,
        heads: usize,
    }

    fn mid() -> FolderSpec {
        let unet = unet_config(UnetShape {
            channels: &[128, 256, 512],
            cross_attention_dim: 512,
            sample_size: 32,
        });
        FolderSpec {
            unet,
            vae_channels: vec![64, 128, 256, 256],
            vae_sample_size: 256,
            clip: ClipSpec {
                hidden: 512,
                intermediate: 2048,
                layers: 6,
                heads: 8,
            },
        }
    }

    fn sd15() -> FolderSpec {
        let unet = unet_config(UnetShape {
            channels: &[320, 640, 1280, 1280],
            cross_attention_dim: 768,
            sample_size: 64,
        });
        FolderSpec {
            unet,
            vae_channels: vec![128, 256, 512, 512],
            vae_sample_size: 512,
            clip: ClipSpec {
                hidden: 768,
                intermediate: 3072,
                layers: 12,
                heads: 12,
            },
        }
    }

    /// What differs between the generated UNets.
    struct UnetShape {
        channels: &'static [usize],
        cross_attention_dim: usize,
        sample_size: usize,
    }

    /// An SD-1.5-style UNet config: cross-attention at every level but the last, 2 resnets
    /// per level, 8 heads.
    fn unet_config(shape: UnetShape) -> Value {
        let levels = shape.channels.len();
        let down: Vec<&str> = (0..levels)
            .map(|i| {
                if i + 1 < levels {
                    "CrossAttnDownBlock2D"
                } else {
                    "DownBlock2D"
                }
            })
            .collect();
        let up: Vec<&str> = (0..levels)
            .map(|i| {
                if i == 0 {
                    "UpBlock2D"
                } else {
                    "CrossAttnUpBlock2D"
                }
            })
            .collect();
        json!({
            "_class_name": "UNet2DConditionModel",
            "_diffusers_version": DIFFUSERS_VERSION,
            "act_fn": "silu",
            "attention_head_dim": 8,
            "block_out_channels": shape.channels,
            "center_input_sample": false,
            "cross_attention_dim": shape.cross_attention_dim,
            "down_block_types": down,
            "downsample_padding": 1,
            "flip_sin_to_cos": true,
            "freq_shift": 0,
            "in_channels": 4,
            "layers_per_block": 2,
            "mid_block_scale_factor": 1,
            "mid_block_type": "UNetMidBlock2DCrossAttn",
            "norm_eps": 1e-5,
            "norm_num_groups": 32,
            "out_channels": 4,
            "sample_size": shape.sample_size,
            "transformer_layers_per_block": 1,
            "up_block_types": up,
            "use_linear_projection": false,
        })
    }

    fn write_folder(out: &Path, seed: u64, spec: &FolderSpec) -> Result<()> {
        let vae = json!({
            "_class_name": "AutoencoderKL",
            "_diffusers_version": DIFFUSERS_VERSION,
            "act_fn": "silu",
            "block_out_channels": spec.vae_channels,
            "down_block_types": [
                "DownEncoderBlock2D",
                "DownEncoderBlock2D",
                "DownEncoderBlock2D",
                "DownEncoderBlock2D"
            ],
            "in_channels": 3,
            "latent_channels": 4,
            "layers_per_block": 2,
            "norm_num_groups": 32,
            "out_channels": 3,
            "sample_size": spec.vae_sample_size,
            "scaling_factor": 0.18215,
            "up_block_types": [
                "UpDecoderBlock2D",
                "UpDecoderBlock2D",
                "UpDecoderBlock2D",
                "UpDecoderBlock2D"
            ],
        });
        let text_encoder = json!({
            "architectures": ["CLIPTextModel"],
            "model_type": "clip_text_model",
            "attention_dropout": 0.0,
            "bos_token_id": 49406,
            "eos_token_id": 49407,
            "pad_token_id": 49407,
            "hidden_act": "quick_gelu",
            "hidden_size": spec.clip.hidden,
            "intermediate_size": spec.clip.intermediate,
            "layer_norm_eps": 1e-5,
            "max_position_embeddings": 77,
            "num_attention_heads": spec.clip.heads,
            "num_hidden_layers": spec.clip.layers,
            "projection_dim": spec.clip.hidden,
            "vocab_size": 49408,
            "dtype": "float32",
        });
        let scheduler = json!({
            "_class_name": "DDIMScheduler",
            "_diffusers_version": DIFFUSERS_VERSION,
            "beta_end": 0.012,
            "beta_schedule": "scaled_linear",
            "beta_start": 0.00085,
            "clip_sample": false,
            "num_train_timesteps": 1000,
            "prediction_type": "epsilon",
            "set_alpha_to_one": false,
            "steps_offset": 1,
            "timestep_spacing": "leading",
        });
        write_json(&out.join("scheduler/scheduler_config.json"), &scheduler)?;

        // Each component gets its own seed stream, so changing one leaves the others.
        let unet_dir = out.join("unet");
        write_json(&unet_dir.join("config.json"), &spec.unet)?;
        let resolved = UnetConfig::from_file(&unet_dir.join("config.json"))?;
        let (i, o) = (resolved.raw.in_channels, resolved.raw.out_channels);
        let candle_config = resolved.candle_config();
        let tensors = record(seed ^ 0x756e_6574, |vb| {
            UNet2DConditionModel::new(vb, i, o, false, candle_config).map(drop)
        })?;
        save(
            &tensors,
            &unet_dir.join("diffusion_pytorch_model.safetensors"),
        )?;

        let vae_dir = out.join("vae");
        write_json(&vae_dir.join("config.json"), &vae)?;
        let vae_config = AutoEncoderKLConfig {
            block_out_channels: spec.vae_channels.clone(),
            layers_per_block: 2,
            latent_channels: 4,
            norm_num_groups: 32,
            use_quant_conv: true,
            use_post_quant_conv: true,
        };
        let tensors = record(seed ^ 0x7661_6500, |vb| {
            AutoEncoderKL::new(vb, 3, 3, vae_config).map(drop)
        })?;
        save(
            &tensors,
            &vae_dir.join("diffusion_pytorch_model.safetensors"),
        )?;

        let clip_dir = out.join("text_encoder");
        write_json(&clip_dir.join("config.json"), &text_encoder)?;
        let tensors = record(seed ^ 0x636c_6970, |vb| {
            let c = spec.clip;
            clip_text_model(vb.pp("text_model"), c, 49408, 77)
        })?;
        save(&tensors, &clip_dir.join("model.safetensors"))?;
        Ok(())
    }

    /// Asks for every tensor of transformers' `CLIPTextModel` (names and shapes only).
    fn clip_text_model(
        vb: VarBuilder,
        spec: ClipSpec,
        vocab: usize,
        positions: usize,
    ) -> candle_core::Result<()> {
        let (hidden, intermediate, layers) = (spec.hidden, spec.intermediate, spec.layers);
        let emb = vb.pp("embeddings");
        candle_nn::embedding(vocab, hidden, emb.pp("token_embedding"))?;
        candle_nn::embedding(positions, hidden, emb.pp("position_embedding"))?;
        for l in 0..layers {
            let layer = vb.pp(format!("encoder.layers.{l}"));
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                candle_nn::linear(hidden, hidden, layer.pp("self_attn").pp(proj))?;
            }
            candle_nn::layer_norm(hidden, 1e-5, layer.pp("layer_norm1"))?;
            candle_nn::linear(hidden, intermediate, layer.pp("mlp.fc1"))?;
            candle_nn::linear(intermediate, hidden, layer.pp("mlp.fc2"))?;
            candle_nn::layer_norm(hidden, 1e-5, layer.pp("layer_norm2"))?;
        }
        candle_nn::layer_norm(hidden, 1e-5, vb.pp("final_layer_norm"))?;
        Ok(())
    }

    /// Builds a model with `build` on a backend that makes up each tensor it is asked
    /// for, and returns them by name.
    fn record(
        seed: u64,
        build: impl FnOnce(VarBuilder<'_>) -> candle_core::Result<()>,
    ) -> Result<BTreeMap<String, Tensor>> {
        let made = Arc::new(Mutex::new(BTreeMap::new()));
        let backend = Seeded {
            seed,
            made: Arc::clone(&made),
        };
        let vb = VarBuilder::from_backend(Box::new(backend), DType::F32, Device::Cpu);
        build(vb)?;
        let made = made
            .lock()
            .map_err(|_| anyhow::anyhow!("weight generator lock poisoned"))?;
        Ok(made.clone())
    }

    fn save(tensors: &BTreeMap<String, Tensor>, path: &Path) -> Result<()> {
        let map: HashMap<&str, Tensor> = tensors
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        candle_core::safetensors::save(&map, path)
            .with_context(|| format!("writing {}", path.display()))
    }

    fn write_json(path: &Path, value: &Value) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(value)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }

    /// Makes up each tensor from the initialisation the layer asks for, seeded by the
    /// tensor's name (so the values do not depend on the order of the requests).
    /// Kaiming-initialised weights get PyTorch's default `U(±1/√fan_in)`.
    struct Seeded {
        seed: u64,
        made: Arc<Mutex<BTreeMap<String, Tensor>>>,
    }

    impl SimpleBackend for Seeded {
        fn get(
            &self,
            shape: Shape,
            name: &str,
            init: Init,
            dtype: DType,
            dev: &Device,
        ) -> candle_core::Result<Tensor> {
            let mut made = self
                .made
                .lock()
                .map_err(|_| candle_core::Error::Msg("weight generator lock poisoned".into()))?;
            if let Some(t) = made.get(name) {
                if t.shape() != &shape {
                    candle_core::bail!(
                        "{name} asked for as {shape:?} and as {:?}",
                        t.shape().dims()
                    );
                }
                return t.to_dtype(dtype)?.to_device(dev);
            }
            let t = make_up(self.seed, name, &shape, init)?;
            made.insert(name.to_string(), t.clone());
            t.to_dtype(dtype)?.to_device(dev)
        }

        fn get_unchecked(
            &self,
            name: &str,
            dtype: DType,
            dev: &Device,
        ) -> candle_core::Result<Tensor> {
            let made = self
                .made
                .lock()
                .map_err(|_| candle_core::Error::Msg("weight generator lock poisoned".into()))?;
            match made.get(name) {
                Some(t) => t.to_dtype(dtype)?.to_device(dev),
                None => Err(candle_core::Error::CannotFindTensor {
                    path: name.to_string(),
                }),
            }
        }

        /// Only candle's attention layers ask, to pick diffusers' current names
        /// (`to_q`, `to_k`, `to_v`, `to_out.0`) over the old ones.
        fn contains_tensor(&self, name: &str) -> bool {
            name.ends_with("to_q.weight")
        }
    }

    fn make_up(seed: u64, name: &str, shape: &Shape, init: Init) -> candle_core::Result<Tensor> {
        let n = shape.elem_count();
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ fnv1a(name));
        let values: Vec<f32> = match init {
            Init::Const(v) => vec![v as f32; n],
            Init::Uniform { lo, up } => uniform(&mut rng, n, lo, up),
            Init::Randn { mean, stdev } => normal(&mut rng, n, mean, stdev),
            Init::Kaiming { .. } => {
                let dims = shape.dims();
                let fan_in: usize = dims.iter().skip(1).product::<usize>().max(1);
                let bound = 1.0 / (fan_in as f64).sqrt();
                uniform(&mut rng, n, -bound, bound)
            }
        };
        Tensor::from_vec(values, shape.clone(), &Device::Cpu)
    }

    fn uniform(rng: &mut ChaCha8Rng, n: usize, lo: f64, up: f64) -> Vec<f32> {
        (0..n)
            .map(|_| (lo + (up - lo) * rng.random::<f64>()) as f32)
            .collect()
    }

    fn normal(rng: &mut ChaCha8Rng, n: usize, mean: f64, stdev: f64) -> Vec<f32> {
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            // Box-Muller; u1 in (0, 1] keeps the logarithm finite.
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random::<f64>();
            let r = (-2.0 * u1.ln()).sqrt();
            let theta = std::f64::consts::TAU * u2;
            out.push((mean + stdev * r * theta.cos()) as f32);
            out.push((mean + stdev * r * theta.sin()) as f32);
        }
        out.truncate(n);
        out
    }

    /// 64-bit FNV-1a of a tensor name.
    fn fnv1a(s: &str) -> u64 {
        s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }
}
