//! `fresco submit`: builds one job from flags and a prompts file, submits
//! it, and prints the job id once the coordinator has stored every task.

use anyhow::Context;
use fresco_core::prompts_file::{self, PromptsFileError};
use fresco_proto::v1 as pb;
use fresco_proto::v1::job_service_client::JobServiceClient;
use tonic::transport::Channel;

use crate::args::SubmitArgs;
use crate::commands::watch;
use crate::{Failure, client, report};

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

/// Submits the job the flags describe; returns it as stored.
pub async fn submit(
    client: &mut JobServiceClient<Channel>,
    args: &SubmitArgs,
) -> Result<pb::Job, Failure> {
    let tasks = tasks_of(args)?;
    let request = pb::SubmitJobRequest {
        model: args.model.clone().unwrap_or_default(),
        defaults: Some(pb::TaskParams {
            prompt: None,
            negative_prompt: args.negative_prompt.clone(),
            seed: args.seed,
            steps: args.steps,
            width: args.width,
            height: args.height,
            guidance: args.guidance,
            n: args.n,
            sampler: args.sampler.clone(),
        }),
        tasks,
        owner: args.owner.clone(),
        priority: args.priority,
        max_attempts: args.max_attempts.unwrap_or(0),
        name: args.name.clone(),
    };
    let job = client
        .submit_job(request)
        .await?
        .into_inner()
        .job
        .context("the coordinator's reply held no job")?;
    Ok(job)
}

pub async fn run(endpoint: &str, args: SubmitArgs) -> Result<(), Failure> {
    let mut client = client::connect(endpoint).await?;
    let job = submit(&mut client, &args).await?;
    if args.json {
        println!("{}", report::job_json(&job));
    } else {
        println!("{}", job.id);
        eprintln!("submitted job {} with {} tasks", job.id, job.task_count);
    }
    if args.wait {
        let done = watch::follow(&mut client, &job.id, !args.json).await?;
        watch::check_outcome(&done)?;
    }
    Ok(())
}
