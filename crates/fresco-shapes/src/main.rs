//! `fresco-shapes` command line: dump generated samples to PNG for inspection,
//! and check the analyzer's accuracy on generated data.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use fresco_shapes::image_io::{grid, upscale, write_png};
use fresco_shapes::{Dataset, Error, Evaluator, PromptAttributes, Split, add_noise, full_caption};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[derive(Parser)]
#[command(
    name = "fresco-shapes",
    version,
    about = "Procedural shape data and its analyzer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum SplitArg {
    Train,
    HeldOut,
    All,
}

impl From<SplitArg> for Split {
    fn from(s: SplitArg) -> Split {
        match s {
            SplitArg::Train => Split::Train,
            SplitArg::HeldOut => Split::HeldOut,
            SplitArg::All => Split::All,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Write generated samples as PNGs plus captions.jsonl.
    Sample {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 64)]
        count: usize,
        #[arg(long, default_value_t = 32)]
        size: u32,
        #[arg(long, value_enum, default_value = "train")]
        split: SplitArg,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Also write all samples tiled into one PNG at this path.
        #[arg(long)]
        grid: Option<PathBuf>,
        /// Nearest-neighbour magnification of the grid image.
        #[arg(long, default_value_t = 1)]
        grid_scale: u32,
    },
    /// Run the analyzer on generated data and print the accuracy table.
    Check {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 2000)]
        count: usize,
        #[arg(long, default_value_t = 32)]
        size: u32,
        #[arg(long, value_enum, default_value = "all")]
        split: SplitArg,
        /// Amplitude of Gaussian-like noise added before analysis (0 = clean).
        #[arg(long, default_value_t = 0)]
        noise: u8,
        /// Print up to this many misjudged samples.
        #[arg(long, default_value_t = 10)]
        show_errors: usize,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Sample {
            seed,
            count,
            size,
            split,
            out,
            grid: grid_path,
            grid_scale,
        } => sample(
            seed,
            count,
            size,
            split.into(),
            &out,
            grid_path.map(|p| (p, grid_scale)),
        ),
        Command::Check {
            seed,
            count,
            size,
            split,
            noise,
            show_errors,
        } => check(seed, count, size, split.into(), noise, show_errors),
    }
}

fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sample(
    seed: u64,
    count: usize,
    size: u32,
    split: Split,
    out: &std::path::Path,
    grid_path: Option<(PathBuf, u32)>,
) -> Result<(), Error> {
    let samples = Dataset::generate(seed, count, size, split)?;
    fs::create_dir_all(out).map_err(io_err(out))?;
    let jsonl = out.join("captions.jsonl");
    let mut w = BufWriter::new(File::create(&jsonl).map_err(io_err(&jsonl))?);
    for (i, s) in samples.iter().enumerate() {
        let name = format!("{i:05}.png");
        write_png(&out.join(&name), &s.rgb, size, size)?;
        let line = serde_json::json!({
            "file": name,
            "caption": s.caption,
            "attributes": PromptAttributes::of_scene(&s.scene),
            "held_out": s.scene.is_held_out(),
        });
        writeln!(w, "{line}").map_err(io_err(&jsonl))?;
    }
    w.flush().map_err(io_err(&jsonl))?;
    if let Some((path, scale)) = grid_path {
        let images: Vec<&[u8]> = samples.iter().map(|s| s.rgb.as_slice()).collect();
        let columns = (images.len() as f64).sqrt().ceil() as u32;
        let (rgb, gw, gh) = grid(&images, size, columns.max(1), 2)?;
        let scale = scale.clamp(1, 16);
        let rgb = upscale(&rgb, gw, gh, scale)?;
        write_png(&path, &rgb, gw * scale, gh * scale)?;
        println!("wrote grid {}", path.display());
    }
    println!("wrote {} samples and {}", samples.len(), jsonl.display());
    Ok(())
}

fn check(
    seed: u64,
    count: usize,
    size: u32,
    split: Split,
    noise: u8,
    show_errors: usize,
) -> Result<(), Error> {
    let ds = Dataset::new(seed, size, split)?;
    let mut noise_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x006e_6f69_7365);
    let mut ev = Evaluator::new();
    let mut shown = 0;
    for i in 0..count as u64 {
        let mut s = ds.sample(i)?;
        add_noise(&mut s.rgb, noise, &mut noise_rng);
        let prompt = full_caption(&s.scene);
        let a = ev.add(&prompt, &s.rgb, size, size)?;
        let wrong = a.foreground != Some(s.scene.colour)
            || a.shape != Some(s.scene.shape)
            || a.background != s.scene.background;
        if wrong && shown < show_errors {
            shown += 1;
            println!(
                "miss #{i}: wanted \"{prompt}\", read {:?} {:?} on {:?} (fg rgb {:?}, iou {:.2} vs {:.2})",
                a.foreground,
                a.shape,
                a.background,
                a.foreground_rgb,
                a.shape_score,
                a.runner_up_score
            );
        }
    }
    println!("seed {seed}, {count} samples, {size}x{size}, split {split:?}, noise {noise}\n");
    print!("{}", ev.report());
    Ok(())
}
