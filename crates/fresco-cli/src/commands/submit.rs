//! `fresco submit`: builds one job from flags and a prompts file (one task
//! per prompt, or a sweep: see [`crate::sweep`]), submits it, and prints
//! the job id once the coordinator has stored every task.
//! While the coordinator does not answer it tries again under the same
//! request id, so the job is stored once or not at all, and it says which.

use std::time::{Duration, Instant};

use anyhow::Context;
use fresco_core::params::Schedule;
use fresco_core::prompts_file::{self, PromptsFileError};
use fresco_core::status::classify;
use fresco_proto::v1 as pb;

use crate::args::{ScheduleArgs, SubmitArgs};
use crate::client::{Client, Target};
use crate::commands::watch;
use crate::{Failure, client, report, sweep};

fn tasks_of(args: &SubmitArgs) -> Result<Vec<pb::TaskParams>, Failure> {
    let mut tasks: Vec<pb::TaskParams> = args
        .prompts
        .iter()
        .map(|p| pb::TaskParams {
            prompt: Some(p.clone()),
            ..Default::default()
        })
        .collect();
    if let Some(path) = &args.prompts_file {
        let from_file = prompts_file::read(path).map_err(|err| match err {
            PromptsFileError::Line { line, message } => {
                Failure::Invalid(format!("{}:{line}: {message}", path.display()))
            }
            PromptsFileError::File(message) => Failure::Invalid(message),
        })?;
        tasks.extend(from_file);
    }
    if tasks.is_empty() {
        return Err(Failure::Invalid(
            "nothing to submit: give --prompt or --prompts-file".into(),
        ));
    }
    Ok(tasks)
}

/// The schedule knobs the flags set; `None` when they set none.
fn schedule_of(s: &ScheduleArgs) -> Option<pb::Schedule> {
    Schedule {
        num_train_timesteps: s.num_train_timesteps,
        beta_start: s.beta_start,
        beta_end: s.beta_end,
        beta_schedule: s.beta_schedule.clone(),
        prediction_type: s.prediction_type.clone(),
        timestep_spacing: s.timestep_spacing.clone(),
        karras_sigmas: s.karras_sigmas,
        flow_shift: s.flow_shift,
        eta: s.eta,
    }
    .to_proto()
}

/// The request the flags describe, under `request_id`: its tasks listed,
/// or the sweep that makes them.
fn request_of(args: &SubmitArgs, request_id: &str) -> Result<pb::SubmitJobRequest, Failure> {
    let mut tasks = tasks_of(args)?;
    let sweep = if sweep::is_sweep(args) {
        let axes = sweep::sweep_of(args, &tasks)?;
        tasks.clear();
        Some(axes)
    } else {
        None
    };
    Ok(pb::SubmitJobRequest {
        model: args.model.clone().unwrap_or_default(),
        defaults: Some(pb::TaskParams {
            prompt: None,
            negative_prompt: args.negative_prompt.clone(),
            seed: args.seed,
            steps: sweep::single(&args.steps),
            width: args.width,
            height: args.height,
            guidance: sweep::single(&args.guidance),
            n: args.n,
            sampler: sweep::single(&args.sampler),
            schedule: schedule_of(&args.schedule),
        }),
        tasks,
        sweep,
        owner: args.owner.clone(),
        priority: args.priority,
        labels: args.labels.iter().cloned().collect(),
        max_attempts: args.max_attempts.unwrap_or(0),
        name: args.name.clone(),
        request_id: request_id.to_owned(),
        deadline_seconds: args.deadline.map_or(0, |d| d.as_secs()),
    })
}

/// Submits the job the flags describe once; returns it as stored.
#[cfg(feature = "dev")]
pub async fn submit(client: &mut Client, args: &SubmitArgs) -> Result<pb::Job, Failure> {
    let request = request_of(args, args.request_id.as_deref().unwrap_or_default())?;
    let job = client
        .submit_job(request)
        .await?
        .into_inner()
        .job
        .context("the coordinator's reply held no job")?;
    Ok(job)
}

/// Sends the submission until the coordinator answers, for at most
/// `--retry-seconds`. Every try carries the same request id, so a job
/// stored by a try whose answer was lost is returned, never stored twice.
async fn submit_until_answered(
    target: &Target,
    request: pb::SubmitJobRequest,
    patience: Duration,
) -> Result<(Client, pb::SubmitJobResponse), Failure> {
    let deadline = Instant::now() + patience;
    let id = request.request_id.clone();
    loop {
        let why = match client::connect(target).await {
            Ok(mut client) => match client.submit_job(request.clone()).await {
                Ok(response) => return Ok((client, response.into_inner())),
                // Not reached, or its answer lost: sent again under the same id.
                Err(status) if classify(&status).retryable => status.message().to_owned(),
                Err(status) => return Err(status.into()),
            },
            // Not reached: tried again.
            Err(Failure::Other(err)) => format!("{err:#}"),
            Err(refused) => return Err(refused),
        };
        if Instant::now() >= deadline {
            return Err(Failure::Other(anyhow::anyhow!(
                "the coordinator did not answer ({why}); the job may or may not be stored: \
                 submit again with --request-id {id} to find out (a stored job is returned, \
                 never stored twice)"
            )));
        }
        eprintln!("the coordinator did not answer ({why}); trying again (request id {id})");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub async fn run(target: &Target, args: SubmitArgs) -> Result<(), Failure> {
    let request_id = args
        .request_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let request = request_of(&args, &request_id)?;
    let delivery = Delivery {
        json: args.json,
        wait: args.wait,
        patience: Duration::from_secs(args.retry_seconds),
    };
    send(target, request, &delivery).await
}

/// How a built request is sent and answered.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Print the stored job as JSON instead of its bare id.
    pub json: bool,
    /// Follow the job until it finishes; fail when a task failed.
    pub wait: bool,
    /// How long to keep trying while the coordinator does not answer.
    pub patience: Duration,
}

/// Submits `request` (under its request id) until the coordinator answers,
/// prints the job, and follows it when asked.
pub async fn send(
    target: &Target,
    request: pb::SubmitJobRequest,
    delivery: &Delivery,
) -> Result<(), Failure> {
    let request_id = request.request_id.clone();
    let (mut client, response) = submit_until_answered(target, request, delivery.patience).await?;
    let job = response
        .job
        .context("the coordinator's reply held no job")?;
    for warning in &response.warnings {
        eprintln!("warning: {warning}");
    }
    if delivery.json {
        println!("{}", report::job_json(&job));
    } else {
        println!("{}", job.id);
        if response.replayed {
            eprintln!(
                "job {} was already stored by an earlier try of this submission (request id {request_id})",
                job.id
            );
        } else {
            eprintln!("submitted job {} with {} tasks", job.id, job.task_count);
        }
    }
    if delivery.wait {
        let done = watch::follow(&mut client, &job.id, !delivery.json).await?;
        watch::check_outcome(&done)?;
    }
    Ok(())
}
