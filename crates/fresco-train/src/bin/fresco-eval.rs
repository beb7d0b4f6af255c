//! `fresco-eval`: samples a fixed prompt set (seen and held-out combinations) from
//! a model directory, scores it with the shapes analyzer and prints the report.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use fresco_dit::DitPipeline;
use fresco_pipeline::parse_device;
use fresco_train::eval::{parse_prompt_list, per_prompt_table, report_json, write_grid};
use fresco_train::{
    EvalOptions, ProbeOptions, SensitivityOptions, caption_sensitivity, clean_image_probe,
    contrast_table, eval_prompts, evaluate, sensitivity_table, write_probe_grid,
};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "fresco-eval",
    version,
    about = "Score a fresco-shapes model on seen and held-out prompts"
)]
struct Args {
    /// Model directory (config.json + model.safetensors).
    #[arg(long)]
    model: PathBuf,
    /// Where to sample: cpu, cuda or cuda:N (cuda needs a build with
    /// `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Images per prompt.
    #[arg(long, default_value_t = 4)]
    k: u32,
    /// Sampler steps.
    #[arg(long, default_value_t = 20)]
    steps: u32,
    /// Classifier-free guidance scale.
    #[arg(long, default_value_t = 4.0)]
    guidance: f32,
    /// Evaluation seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Image side in pixels.
    #[arg(long, default_value_t = 32)]
    size: u32,
    /// Sampler: euler or heun.
    #[arg(long, default_value = "euler")]
    sampler: String,
    /// Also write a labelled grid of all samples to this PNG.
    #[arg(long)]
    grid: Option<PathBuf>,
    /// Magnification of the grid images.
    #[arg(long, default_value_t = 3)]
    grid_scale: u32,
    /// Also print a table of each prompt's accuracy and the shape read from
    /// each of its images.
    #[arg(long)]
    per_prompt: bool,
    /// Also write the report as JSON to this file (with --per-prompt, each
    /// prompt's scores too, under `per_prompt`).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Evaluate these prompts instead of the built-in set: a text file with one
    /// prompt per line (`#` starts a comment line); each must name a colour and
    /// a shape, and size and position are scored when a prompt names them.
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Instead of sampling, measure caption sensitivity: noise training images
    /// to the flow times of --sensitivity-times and report, per attribute, how
    /// often the true caption gives a better clean-image estimate than every
    /// caption with that attribute swapped.
    #[arg(long)]
    sensitivity: bool,
    /// Training images per attribute and flow time for --sensitivity.
    #[arg(long, default_value_t = 48)]
    sensitivity_images: usize,
    /// Measure --sensitivity on large centred pictures under the evaluation's
    /// prompt form (colour, shape and background only), the captions of a
    /// model trained with --layout-words-percent 0.
    #[arg(long)]
    sensitivity_canonical: bool,
    /// Flow times for --sensitivity, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.7,0.9")]
    sensitivity_times: Vec<f64>,
    /// Instead of sampling, probe the clean-image estimate: draw, for one
    /// large centred scene per shape, the model's x̂0 at each of --probe-times
    /// into this PNG, and print how much the shapes' estimates differ.
    #[arg(long)]
    probe: Option<PathBuf>,
    /// Flow times for --probe, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.95,0.85,0.7,0.5,0.3")]
    probe_times: Vec<f64>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let device = parse_device(&args.device)?;
    let pipeline = DitPipeline::from_dir(&args.model, &device)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let opts = EvalOptions {
        k: args.k,
        steps: args.steps,
        guidance: args.guidance,
        seed: args.seed,
        size: args.size,
        sampler: args.sampler.clone(),
    };
    if let Some(path) = &args.probe {
        let probe_opts = ProbeOptions {
            times: args.probe_times.clone(),
            seed: args.seed,
            size: args.size,
            ..ProbeOptions::default()
        };
        let probe = clean_image_probe(&pipeline, &probe_opts).context("probing")?;
        write_probe_grid(&probe, path, args.grid_scale)
            .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "model {} | clean-image probe, seed {}: wrote {}\n",
            args.model.display(),
            args.seed,
            path.display()
        );
        print!("{}", contrast_table(&probe.contrast()));
        return Ok(());
    }
    if args.sensitivity {
        let sens = SensitivityOptions {
            images: args.sensitivity_images,
            times: args.sensitivity_times.clone(),
            seed: args.seed,
            size: args.size,
            canonical: args.sensitivity_canonical,
        };
        let rows = caption_sensitivity(&pipeline, &sens).context("measuring sensitivity")?;
        println!(
            "model {} | caption sensitivity, {} training images, seed {}\n",
            args.model.display(),
            sens.images,
            sens.seed
        );
        print!("{}", sensitivity_table(&rows));
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_string_pretty(&rows)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        return Ok(());
    }
    let prompts = match &args.prompts {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            parse_prompt_list(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => eval_prompts(),
    };
    let out = evaluate(&pipeline, &prompts, &opts).context("sampling")?;
    println!(
        "model {} | {} prompts × {} images, {} steps, guidance {}, seed {}\n",
        args.model.display(),
        prompts.len(),
        args.k,
        args.steps,
        args.guidance,
        args.seed
    );
    print!("{}", out.report);
    if args.per_prompt {
        print!("\n{}", per_prompt_table(&out.per_prompt));
    }
    if let Some(path) = &args.grid {
        write_grid(&out, path, args.grid_scale).context("writing the grid")?;
        println!("wrote grid {}", path.display());
    }
    if let Some(path) = &args.json {
        std::fs::write(path, report_json(&out, args.per_prompt)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
