//! `fresco watch`: live progress until the job finishes: a progress bar on a
//! terminal, one plain line per change otherwise.

use std::io::IsTerminal;

use anyhow::Context;
use fresco_proto::v1 as pb;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_stream::StreamExt;

use crate::args::JobArgs;
use crate::client::{Client, Target};
use crate::{Failure, client, report};

/// Streams the job's progress to stderr until it finishes; returns the last
/// state.
pub async fn follow(client: &mut Client, job_id: &str, show: bool) -> Result<pb::Job, Failure> {
    let mut stream = client
        .watch_job(pb::WatchJobRequest {
            job_id: job_id.to_owned(),
        })
        .await?
        .into_inner();
    let bar = (show && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} tasks {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let mut last: Option<pb::Job> = None;
    while let Some(job) = stream.next().await {
        let job = job?;
        let reason_changed = last
            .as_ref()
            .is_none_or(|l| l.waiting_reason != job.waiting_reason);
        if show && reason_changed && !job.waiting_reason.is_empty() {
            let line = format!("{} waiting: {}", job.id, job.waiting_reason);
            match &bar {
                Some(bar) => bar.println(line),
                None => eprintln!("{line}"),
            }
        }
        let c = report::counts(&job);
        let done = c.succeeded + c.failed + c.cancelled;
        match &bar {
            Some(bar) => {
                bar.set_length(job.task_count);
                bar.set_position(done);
                let rate = report::rate_line(&job)
                    .map(|r| format!(" {r}"))
                    .unwrap_or_default();
                bar.set_message(format!(
                    "({} running, {} failed){rate}",
                    c.running, c.failed
                ));
            }
            None if show => eprintln!(
                "{} {}/{} done: {}{}",
                job.id,
                done,
                job.task_count,
                report::counts_line(&job),
                report::rate_line(&job)
                    .map(|r| format!("; {r}"))
                    .unwrap_or_default()
            ),
            None => {}
        }
        let finished = job.finished;
        last = Some(job);
        if finished {
            break;
        }
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    Ok(last.context("the watch stream ended before the job finished")?)
}

/// Exit status of a finished job: an error when any task did not succeed.
pub fn check_outcome(job: &pb::Job) -> Result<(), Failure> {
    let c = report::counts(job);
    if c.failed > 0 || c.cancelled > 0 {
        return Err(Failure::JobFailed(format!(
            "job {} finished with {} failed and {} cancelled tasks",
            job.id, c.failed, c.cancelled
        )));
    }
    Ok(())
}

pub async fn run(target: &Target, args: JobArgs) -> Result<(), Failure> {
    let mut client = client::connect(target).await?;
    let job = follow(&mut client, &args.job_id, true).await?;
    println!("{}: {}", job.id, report::counts_line(&job));
    check_outcome(&job)
}
