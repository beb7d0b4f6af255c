//! `fresco retry`, `fresco pause`, `fresco resume`, `fresco priority`: job
//! control after submission. Each prints the job's counts after the change.

use fresco_proto::v1 as pb;

use crate::args::{JobArgs, PriorityArgs};
use crate::client::Target;
use crate::{Failure, client, report};

/// What to do to the job.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    Retry,
    Pause,
    Resume,
}

pub async fn run(target: &Target, action: Action, args: JobArgs) -> Result<(), Failure> {
    let mut client = client::connect(target).await?;
    let job_id = args.job_id;
    let job = match action {
        Action::Retry => client.retry_job(pb::RetryJobRequest { job_id }).await?,
        Action::Pause => client.pause_job(pb::PauseJobRequest { job_id }).await?,
        Action::Resume => client.resume_job(pb::ResumeJobRequest { job_id }).await?,
    }
    .into_inner();
    println!("{}: {}", job.id, report::counts_line(&job));
    Ok(())
}

pub async fn priority(target: &Target, args: PriorityArgs) -> Result<(), Failure> {
    let mut client = client::connect(target).await?;
    let job = client
        .set_job_priority(pb::SetJobPriorityRequest {
            job_id: args.job_id,
            priority: args.priority,
        })
        .await?
        .into_inner();
    println!(
        "{}: priority {}, {}",
        job.id,
        job.priority,
        report::counts_line(&job)
    );
    Ok(())
}
