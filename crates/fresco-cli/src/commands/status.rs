//! `fresco status`: a job's counts by state, labels, recent throughput,
//! estimated finish and why it waits, then a bounded part of its tasks,
//! so a job of millions answers as fast as one of ten: its first failed
//! tasks with their errors, its first running tasks with their step, and
//! one page of its tasks in index order (`--tasks N` from `--from-index`),
//! saying how many follow and how to page on. `--tasks all` lists every
//! task. A job whose tasks all fit the page is listed whole, its failed
//! and running tasks among them.

use fresco_proto::v1 as pb;
use serde_json::Value;

use crate::args::{StatusArgs, TaskCount};
use crate::client::{Client, Target};
use crate::{Failure, client, report};

/// Tasks per `ListTasks` page.
const PAGE: u32 = 1000;

/// Failed tasks shown, with their errors, beside a page that does not
/// hold the whole job.
pub const FAILED_SHOWN: u32 = 20;

/// Running tasks shown, with their step, beside such a page.
pub const RUNNING_SHOWN: u32 = 20;

/// Up to `limit` tasks (`None`: all) of job `job_id` in `state`
/// (`Unspecified`: any), in index order from `from_index`, read a page at
/// a time.
async fn tasks_from(
    client: &mut Client,
    job_id: &str,
    state: pb::TaskState,
    from_index: u32,
    limit: Option<u64>,
) -> Result<Vec<pb::Task>, Failure> {
    let mut tasks: Vec<pb::Task> = Vec::new();
    let mut from = from_index;
    loop {
        let wanted = limit.map_or(u64::from(PAGE), |limit| {
            limit
                .saturating_sub(tasks.len() as u64)
                .min(u64::from(PAGE))
        });
        if wanted == 0 {
            return Ok(tasks);
        }
        let page = client
            .list_tasks(pb::ListTasksRequest {
                job_id: job_id.to_owned(),
                state: state as i32,
                from_index: from,
                limit: wanted as u32,
            })
            .await?
            .into_inner()
            .tasks;
        let full = page.len() as u64 == wanted;
        if let Some(last) = page.last() {
            from = last.index.saturating_add(1);
        }
        tasks.extend(page);
        if !full {
            return Ok(tasks);
        }
    }
}

/// Every task of a job, in index order.
pub async fn all_tasks(client: &mut Client, job_id: &str) -> Result<Vec<pb::Task>, Failure> {
    tasks_from(client, job_id, pb::TaskState::Unspecified, 0, None).await
}

/// What `fresco status` shows of a job's tasks.
#[derive(Debug, Default)]
struct Shown {
    /// The page asked for, in index order.
    listed: Vec<pb::Task>,
    /// Whether `listed` holds every task of the job.
    whole: bool,
    /// The first failed and running tasks.
    failed: Vec<pb::Task>,
    running: Vec<pb::Task>,
    /// Where the next page starts, and how many tasks are there from it.
    next_from_index: u32,
    following: u64,
}

/// The first `shown` tasks of `tasks` in `state`.
fn first_in(tasks: &[pb::Task], state: pb::TaskState, shown: u32) -> Vec<pb::Task> {
    tasks
        .iter()
        .filter(|task| task.state == state as i32)
        .take(shown as usize)
        .cloned()
        .collect()
}

/// The page's place in the job: where the next page starts and how many
/// tasks follow (a job's indices run from 0 to its task count).
fn next_page(job: &pb::Job, listed: &[pb::Task], from_index: u32) -> (u32, u64) {
    let next = listed
        .last()
        .map_or(from_index, |last| last.index.saturating_add(1));
    (next, job.task_count.saturating_sub(u64::from(next)))
}

/// Up to `shown` of the job's `total` tasks in `state`, read only when
/// there are some.
async fn first_of_job(
    client: &mut Client,
    job: &pb::Job,
    state: pb::TaskState,
    total: u64,
    shown: u32,
) -> Result<Vec<pb::Task>, Failure> {
    if total == 0 {
        return Ok(Vec::new());
    }
    tasks_from(client, &job.id, state, 0, Some(u64::from(shown))).await
}

/// Reads what `args` asks to see of `job`'s tasks.
async fn shown(client: &mut Client, job: &pb::Job, args: &StatusArgs) -> Result<Shown, Failure> {
    let limit = match args.tasks {
        TaskCount::All => None,
        TaskCount::First(n) => Some(u64::from(n)),
    };
    let listed = tasks_from(
        client,
        &job.id,
        pb::TaskState::Unspecified,
        args.from_index,
        limit,
    )
    .await?;
    let whole = args.from_index == 0 && listed.len() as u64 >= job.task_count;
    let (failed, running) = if whole {
        (
            first_in(&listed, pb::TaskState::Failed, FAILED_SHOWN),
            first_in(&listed, pb::TaskState::Running, RUNNING_SHOWN),
        )
    } else {
        let counts = report::counts(job);
        let failed = pb::TaskState::Failed;
        let running = pb::TaskState::Running;
        (
            first_of_job(client, job, failed, counts.failed, FAILED_SHOWN).await?,
            first_of_job(client, job, running, counts.running, RUNNING_SHOWN).await?,
        )
    };
    let (next_from_index, following) = next_page(job, &listed, args.from_index);
    Ok(Shown {
        listed,
        whole,
        failed,
        running,
        next_from_index,
        following,
    })
}

pub async fn run(target: &Target, args: StatusArgs) -> Result<(), Failure> {
    let mut client = client::connect(target).await?;
    let job = client
        .get_job(pb::GetJobRequest {
            job_id: args.job_id.clone(),
        })
        .await?
        .into_inner();
    let shown = shown(&mut client, &job, &args).await?;
    if args.json {
        println!("{}", status_json(&job, &shown));
        return Ok(());
    }
    for line in summary_lines(&job)
        .into_iter()
        .chain(task_lines(&job, &shown))
    {
        println!("{line}");
    }
    Ok(())
}

/// The job as `fresco list --json` shows it, with the tasks shown: `tasks`
/// (the page), `failed_tasks`, `running_tasks`, and where the next page
/// starts (`next_from_index`, null when no task follows) with how many
/// tasks follow.
fn status_json(job: &pb::Job, shown: &Shown) -> Value {
    let tasks = |tasks: &[pb::Task]| tasks.iter().map(report::task_json).collect::<Value>();
    let mut value = report::job_json(job);
    value["tasks"] = tasks(&shown.listed);
    value["failed_tasks"] = tasks(&shown.failed);
    value["running_tasks"] = tasks(&shown.running);
    value["tasks_following"] = shown.following.into();
    value["next_from_index"] = (shown.following > 0)
        .then_some(shown.next_from_index)
        .into();
    value
}

/// The job's own lines: state, counts, labels, throughput, why it waits,
/// deadline and sweep.
fn summary_lines(job: &pb::Job) -> Vec<String> {
    let progress = if job.finished {
        "finished"
    } else {
        "in progress"
    };
    let mut lines = vec![
        format!(
            "job {} ({progress}) model {} tenant {}",
            job.id, job.model, job.tenant
        ),
        format!("tasks {}: {}", job.task_count, report::counts_line(job)),
    ];
    lines.extend(report::labels_line(job).map(|labels| format!("labels {labels}")));
    lines.extend(report::rate_line(job).map(|rate| format!("throughput {rate}")));
    lines.extend(report::waiting_line(job));
    lines.extend(
        job.deadline
            .and_then(report::rfc3339)
            .map(|deadline| format!("deadline {deadline}: tasks still queued then fail")),
    );
    lines.extend(job.sweep.iter().flat_map(report::sweep_lines));
    lines
}

/// The tasks shown: the page alone when it holds the whole job; else the
/// first failed and running tasks, the page, and how to page on.
fn task_lines(job: &pb::Job, shown: &Shown) -> Vec<String> {
    let mut lines = Vec::new();
    if !shown.whole {
        let counts = report::counts(job);
        section(&mut lines, "failed tasks", counts.failed, &shown.failed);
        section(&mut lines, "running tasks", counts.running, &shown.running);
        if let (Some(first), Some(last)) = (shown.listed.first(), shown.listed.last()) {
            lines.push(format!(
                "tasks #{}-#{} of {}:",
                first.index, last.index, job.task_count
            ));
        }
    }
    lines.extend(shown.listed.iter().flat_map(task_detail));
    if shown.following > 0 {
        lines.push(format!(
            "  ... {} more tasks from #{}: fresco status {} --from-index {} (--tasks N for N at a time, --tasks all for every one)",
            shown.following, shown.next_from_index, job.id, shown.next_from_index
        ));
    }
    lines
}

/// `failed tasks: 312 (the first 20):` and those tasks; nothing when the
/// job has none.
fn section(lines: &mut Vec<String>, what: &str, total: u64, tasks: &[pb::Task]) {
    if total == 0 {
        return;
    }
    if (tasks.len() as u64) < total {
        lines.push(format!("{what}: {total} (the first {}):", tasks.len()));
    } else {
        lines.push(format!("{what}: {total}:"));
    }
    lines.extend(tasks.iter().flat_map(task_detail));
}

/// A task's line (state, attempt, a running task's step, prompt, place in
/// a sweep, output keys), then one line per failed attempt.
fn task_detail(task: &pb::Task) -> Vec<String> {
    let keys: Vec<&str> = task.outputs.iter().map(|o| o.key.as_str()).collect();
    let place = task
        .coordinates
        .as_ref()
        .map(|at| format!(" [{}]", report::coordinates_text(at)))
        .unwrap_or_default();
    let mut lines = vec![format!(
        "  #{:<5} {:<9} attempt {}{} {:?}{place} {}",
        task.index,
        report::state_name(task.state),
        task.attempt,
        step_progress(task),
        task.prompt,
        keys.join(" ")
    )];
    lines.extend(task.errors.iter().map(|error| {
        format!(
            "         attempt {} on {} ({}): {}",
            error.attempt, error.worker, error.kind, error.message
        )
    }));
    lines
}

/// ` step 12/30` for a running task, else nothing.
fn step_progress(task: &pb::Task) -> String {
    if task.state == pb::TaskState::Running as i32 {
        format!(" step {}/{}", task.progress_step, task.steps)
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(index: u32, state: pb::TaskState) -> pb::Task {
        pb::Task {
            index,
            state: state as i32,
            prompt: format!("prompt {index}"),
            ..Default::default()
        }
    }

    fn job(task_count: u64, failed: u64) -> pb::Job {
        pb::Job {
            id: "J".into(),
            task_count,
            counts: Some(pb::StateCounts {
                queued: task_count - failed,
                failed,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn page(from: u32, to: u32) -> Vec<pb::Task> {
        (from..to).map(|i| task(i, pb::TaskState::Queued)).collect()
    }

    #[test]
    fn a_page_says_where_the_next_starts_and_how_many_follow() {
        let big = job(1_000_000, 0);
        assert_eq!(next_page(&big, &page(0, 20), 0), (20, 999_980));
        assert_eq!(next_page(&big, &page(40, 60), 40), (60, 999_940));
        assert_eq!(next_page(&big, &[], 7), (7, 999_993), "--tasks 0");
        let small = job(5, 0);
        assert_eq!(next_page(&small, &page(0, 5), 0), (5, 0));
        assert_eq!(next_page(&small, &[], 9), (9, 0), "past the end");
    }

    #[test]
    fn a_page_of_a_big_job_shows_failed_tasks_and_how_to_page_on() {
        let big = job(1_000_000, 312);
        let mut failed = task(77, pb::TaskState::Failed);
        failed.errors.push(pb::TaskError {
            attempt: 1,
            worker: "w1".into(),
            message: "out of memory".into(),
            ..Default::default()
        });
        let shown = Shown {
            listed: page(0, 2),
            failed: vec![failed],
            next_from_index: 2,
            following: 999_998,
            ..Shown::default()
        };
        let lines = task_lines(&big, &shown);
        assert_eq!(lines[0], "failed tasks: 312 (the first 1):");
        assert!(lines[1].starts_with("  #77    failed"), "{lines:?}");
        assert!(lines[2].ends_with("out of memory"), "{lines:?}");
        assert_eq!(lines[3], "tasks #0-#1 of 1000000:");
        assert!(lines[4].starts_with("  #0 "), "{lines:?}");
        assert!(
            lines[6].contains("999998 more tasks from #2: fresco status J --from-index 2"),
            "{lines:?}"
        );
        assert_eq!(lines.len(), 7, "no running tasks, no section: {lines:?}");
    }

    #[test]
    fn a_whole_job_is_listed_alone() {
        let small = job(3, 1);
        let listed = vec![
            task(0, pb::TaskState::Queued),
            task(1, pb::TaskState::Failed),
            task(2, pb::TaskState::Queued),
        ];
        let shown = Shown {
            failed: first_in(&listed, pb::TaskState::Failed, FAILED_SHOWN),
            listed,
            whole: true,
            next_from_index: 3,
            ..Shown::default()
        };
        let lines = task_lines(&small, &shown);
        assert_eq!(lines.len(), 3, "{lines:?}");
        let value = status_json(&small, &shown);
        assert_eq!(value["tasks"].as_array().map(Vec::len), Some(3));
        assert_eq!(value["failed_tasks"][0]["index"], 1);
        assert_eq!(value["tasks_following"], 0);
        assert_eq!(value["next_from_index"], Value::Null);
    }

    #[test]
    fn task_counts_read_a_number_or_all() {
        assert_eq!("all".parse(), Ok(TaskCount::All));
        assert_eq!("ALL".parse(), Ok(TaskCount::All));
        assert_eq!("20".parse(), Ok(TaskCount::First(20)));
        assert!("-1".parse::<TaskCount>().is_err());
        assert!("some".parse::<TaskCount>().is_err());
    }
}
