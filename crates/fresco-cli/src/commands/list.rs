//! `fresco list`: recent jobs, newest first.

use fresco_proto::v1 as pb;

use crate::args::ListArgs;
use crate::client::Target;
use crate::{Failure, client, report};

pub async fn run(target: &Target, args: ListArgs) -> Result<(), Failure> {
    let mut client = client::connect(target).await?;
    let page = client
        .list_jobs(pb::ListJobsRequest {
            limit: args.limit,
            owner: args.owner,
            all_tenants: args.all_tenants,
            labels: args.labels.into_iter().collect(),
            state: args
                .state
                .map_or(pb::JobState::Unspecified, |s| s.to_proto()) as i32,
            model: args.model,
            search: args.search,
            page_token: args.page_token,
        })
        .await?
        .into_inner();
    let jobs = page.jobs;
    if args.json {
        let all: Vec<_> = jobs.iter().map(report::job_json).collect();
        println!("{}", serde_json::Value::Array(all));
        return Ok(());
    }
    for job in &jobs {
        let waiting = report::waiting_line(job)
            .map(|w| format!("  ({w})"))
            .unwrap_or_default();
        let rate = report::rate_line(job)
            .map(|r| format!("  {r}"))
            .unwrap_or_default();
        let labels = report::labels_line(job)
            .map(|l| format!("  [{l}]"))
            .unwrap_or_default();
        println!(
            "{}  {:<12} {:<11} {:>7} tasks  {}  {}{rate}{waiting}{labels}",
            job.id,
            job.tenant,
            if job.finished {
                "finished"
            } else {
                "in progress"
            },
            job.task_count,
            job.model,
            report::counts_line(job)
        );
    }
    if !page.next_page_token.is_empty() {
        eprintln!(
            "more jobs may follow: fresco list --page-token {}",
            page.next_page_token
        );
    }
    Ok(())
}
