//! `fresco cancel`: cancels every unfinished task of a job.

use fresco_proto::v1 as pb;

use crate::args::JobArgs;
use crate::{Failure, client, report};

pub async fn run(endpoint: &str, args: JobArgs) -> Result<(), Failure> {
    let mut client = client::connect(endpoint).await?;
    let job = client
        .cancel_job(pb::CancelJobRequest {
            job_id: args.job_id,
        })
        .await?
        .into_inner();
    println!("{}: {}", job.id, report::counts_line(&job));
    Ok(())
}
