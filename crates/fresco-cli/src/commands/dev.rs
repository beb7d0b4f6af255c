//! `fresco dev`: the whole farm in this process ([`fresco_dev::DevFarm`]).
//! Without `--submit` it serves until Ctrl-C; with `--submit FILE` it
//! renders the file as one job, downloads the images, names their folder
//! and exits (non-zero when a task failed). Without `--auth` it serves
//! without keys, on loopback only; `fresco dev keys ...` manages the keys
//! `--auth` checks.

use std::path::PathBuf;
use std::time::Duration;

use fresco_dev::{DevFarm, DevOptions};
use fresco_telemetry::LogFormat;

use crate::args::{DevArgs, DevCommand, DownloadArgs, SubmitArgs};
use crate::client::Target;
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
        auth: args.auth,
        metrics_listen: args.metrics_listen,
        http_listen: (!args.no_dashboard).then(|| args.http_listen.clone()),
        ..DevOptions::new(&args.data_dir)
    }
}

/// Submits `file`, follows it to the end and downloads its images, calling
/// with `api_key` (needed with `--auth`).
async fn render(
    farm: &DevFarm,
    file: PathBuf,
    args: &DevArgs,
    api_key: Option<String>,
) -> Result<(), Failure> {
    let target = Target {
        endpoint: farm.endpoint(),
        api_key,
    };
    let mut client = client::connect_in_process(&target).await?;
    let submit_args = SubmitArgs {
        model: args.model.clone(),
        prompts_file: Some(file),
        name: "fresco dev".into(),
        ..SubmitArgs::default()
    };
    let job = submit::submit(&mut client, &submit_args).await?;
    eprintln!("submitted job {} with {} tasks", job.id, job.task_count);
    if let Some(url) = farm.dashboard_url() {
        eprintln!("follow it in the dashboard: {url}jobs/{}", job.id);
    }
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
            jobs: 8,
            layout: download::layout::DEFAULT.to_owned(),
            since: None,
        },
    )
    .await?;
    watch::check_outcome(&done)?;
    println!("{}", out.display());
    Ok(())
}

pub async fn run(args: DevArgs, api_key: Option<String>) -> Result<(), Failure> {
    if let Some(command) = args.keys {
        fresco_telemetry::init_tracing_with_default(LogFormat::Text, "warn");
        match command {
            DevCommand::Keys(command) => fresco_dev::keys(&args.data_dir, command).await?,
            DevCommand::Tenants(command) => fresco_dev::tenants(&args.data_dir, command).await?,
        }
        return Ok(());
    }
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
    if !args.auth {
        fresco_dev::check_listen(&args.listen)
            .await
            .map_err(Failure::Invalid)?;
        if !args.no_dashboard {
            fresco_dev::check_loopback("--http-listen", &args.http_listen)
                .await
                .map_err(Failure::Invalid)?;
        }
    }
    if args.auth && args.submit.is_some() && api_key.is_none() {
        return Err(Failure::Invalid(
            "--submit with --auth needs a client key: give --api-key (make one with `fresco dev keys create`)".into(),
        ));
    }
    let farm = DevFarm::start(&options(&args)).await?;
    let outcome = match args.submit.clone() {
        Some(file) => render(&farm, file, &args, api_key).await,
        None => {
            eprintln!(
                "fresco dev: serving on {} {} (data in {}); Ctrl-C stops",
                farm.endpoint(),
                if args.auth {
                    "with keys"
                } else {
                    "without keys"
                },
                args.data_dir.display()
            );
            if let Some(url) = farm.dashboard_url() {
                eprintln!("fresco dev: dashboard at {url}");
            }
            fresco_telemetry::shutdown_on_signals().cancelled().await;
            Ok(())
        }
    };
    farm.stop().await?;
    outcome
}
