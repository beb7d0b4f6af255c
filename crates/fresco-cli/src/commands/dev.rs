//! `fresco dev`: the whole farm in this process ([`fresco_dev::DevFarm`]).
//! Without `--submit` it serves until Ctrl-C; with `--submit FILE` it
//! renders the file as one job, downloads the images, names their folder
//! and exits (non-zero when a task failed).

use std::path::PathBuf;
use std::time::Duration;

use fresco_dev::{DevFarm, DevOptions};
use fresco_telemetry::LogFormat;

use crate::args::{DevArgs, DownloadArgs, SubmitArgs};
use crate::commands::{download, submit, watch};
use crate::{Failure, client};

fn options(args: &DevArgs) -> DevOptions {
    DevOptions {
        listen: args.listen.clone(),
        workers: usize::from(args.workers),
        models_dir: args.models_dir.clone(),
        cache_budget_bytes: args.cache_budget_mb << 20,
        lease: Duration::from_secs(30),
        queue_timeout: (args.queue_timeout_seconds > 0)
            .then(|| Duration::from_secs(args.queue_timeout_seconds)),
        sweep_interval: Duration::from_secs(args.sweep_interval_seconds),
        quarantine_cooldown: Duration::from_secs(args.quarantine_cooldown_seconds),
        ..DevOptions::new(&args.data_dir)
    }
}

/// Submits `file`, follows it to the end and downloads its images.
async fn render(farm: &DevFarm, file: PathBuf, args: &DevArgs) -> Result<(), Failure> {
    let endpoint = farm.endpoint();
    let mut client = client::connect_in_process(&endpoint).await?;
    let submit_args = SubmitArgs {
        model: args.model.clone(),
        prompts_file: Some(file),
        name: "fresco dev".into(),
        ..SubmitArgs::default()
    };
    let job = submit::submit(&mut client, &submit_args).await?;
    eprintln!("submitted job {} with {} tasks", job.id, job.task_count);
    let done = watch::follow(&mut client, &job.id, true).await?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("out").join(&job.id));
    download::download(
        &mut client,
        &DownloadArgs {
            job_id: job.id.clone(),
            out: out.clone(),
        },
    )
    .await?;
    watch::check_outcome(&done)?;
    println!("{}", out.display());
    Ok(())
}

pub async fn run(args: DevArgs) -> Result<(), Failure> {
    if args.submit.is_some() && std::env::var_os("RUST_LOG").is_none() {
        // Keep the progress bar readable: only problems are logged.
        fresco_telemetry::init_tracing_with_default(LogFormat::Text, "warn");
    } else {
        fresco_telemetry::init_tracing(LogFormat::Text);
    }
    if let Some(file) = &args.submit
        && !file.is_file()
    {
        return Err(Failure::Invalid(format!(
            "--submit {}: no such file",
            file.display()
        )));
    }
    let farm = DevFarm::start(&options(&args)).await?;
    let outcome = match args.submit.clone() {
        Some(file) => render(&farm, file, &args).await,
        None => {
            eprintln!(
                "fresco dev: serving on {} (data in {}); Ctrl-C stops",
                farm.endpoint(),
                args.data_dir.display()
            );
            fresco_telemetry::shutdown_on_signals().cancelled().await;
            Ok(())
        }
    };
    farm.stop().await?;
    outcome
}
