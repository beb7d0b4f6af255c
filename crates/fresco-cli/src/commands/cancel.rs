//! `fresco cancel`: cancels every unfinished task of a job, or one task.

use fresco_proto::v1 as pb;

use crate::args::CancelArgs;
use crate::client::Target;
use crate::{Failure, client, report};

pub async fn run(target: &Target, args: CancelArgs) -> Result<(), Failure> {
    let mut client = client::connect(target).await?;
    match (args.job_id, args.task) {
        (_, Some(task_id)) => {
            let task = client
                .cancel_task(pb::CancelTaskRequest { task_id })
                .await?
                .into_inner();
            println!("{}: {}", task.id, report::state_name(task.state));
        }
        (Some(job_id), None) => {
            let job = client
                .cancel_job(pb::CancelJobRequest { job_id })
                .await?
                .into_inner();
            println!("{}: {}", job.id, report::counts_line(&job));
        }
        (None, None) => {
            return Err(Failure::Invalid("give a job id or --task TASK_ID".into()));
        }
    }
    Ok(())
}
