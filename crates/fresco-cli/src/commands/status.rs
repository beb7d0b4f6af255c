//! `fresco status`: a job's counts by state, labels, recent throughput and
//! estimated finish, and every task's state (with a running task's step),
//! output keys and errors.

use fresco_proto::v1 as pb;

use crate::args::StatusArgs;
use crate::client::{Client, Target};
use crate::{Failure, client, report};

/// Tasks per `ListTasks` page.
const PAGE: u32 = 1000;

/// Every task of a job, in index order.
pub async fn all_tasks(client: &mut Client, job_id: &str) -> Result<Vec<pb::Task>, Failure> {
    let mut tasks = Vec::new();
    loop {
        let page = client
            .list_tasks(pb::ListTasksRequest {
                job_id: job_id.to_owned(),
                state: pb::TaskState::Unspecified as i32,
                from_index: tasks.len() as u32,
                limit: PAGE,
            })
            .await?
            .into_inner()
            .tasks;
        let full = page.len() == PAGE as usize;
        tasks.extend(page);
        if !full {
            return Ok(tasks);
        }
    }
}

pub async fn run(target: &Target, args: StatusArgs) -> Result<(), Failure> {
    let mut client = client::connect(target).await?;
    let job = client
        .get_job(pb::GetJobRequest {
            job_id: args.job_id.clone(),
        })
        .await?
        .into_inner();
    let tasks = all_tasks(&mut client, &args.job_id).await?;
    if args.json {
        let mut value = report::job_json(&job);
        value["tasks"] = tasks.iter().map(report::task_json).collect();
        println!("{value}");
        return Ok(());
    }
    println!(
        "job {} ({}) model {} tenant {}",
        job.id,
        if job.finished {
            "finished"
        } else {
            "in progress"
        },
        job.model,
        job.tenant
    );
    println!("tasks {}: {}", job.task_count, report::counts_line(&job));
    if let Some(labels) = report::labels_line(&job) {
        println!("labels {labels}");
    }
    if let Some(rate) = report::rate_line(&job) {
        println!("throughput {rate}");
    }
    if let Some(waiting) = report::waiting_line(&job) {
        println!("{waiting}");
    }
    if let Some(deadline) = job.deadline.and_then(report::rfc3339) {
        println!("deadline {deadline}: tasks still queued then fail");
    }
    for line in job.sweep.iter().flat_map(report::sweep_lines) {
        println!("{line}");
    }
    for task in &tasks {
        let keys: Vec<&str> = task.outputs.iter().map(|o| o.key.as_str()).collect();
        let place = task
            .coordinates
            .as_ref()
            .map(|at| format!(" [{}]", report::coordinates_text(at)))
            .unwrap_or_default();
        println!(
            "  #{:<5} {:<9} attempt {}{} {:?}{place} {}",
            task.index,
            report::state_name(task.state),
            task.attempt,
            step_progress(task),
            task.prompt,
            keys.join(" ")
        );
        for error in &task.errors {
            println!(
                "         attempt {} on {} ({}): {}",
                error.attempt, error.worker, error.kind, error.message
            );
        }
    }
    Ok(())
}

/// ` step 12/30` for a running task, else nothing.
fn step_progress(task: &pb::Task) -> String {
    if task.state == pb::TaskState::Running as i32 {
        format!(" step {}/{}", task.progress_step, task.steps)
    } else {
        String::new()
    }
}
