//! `fresco download`: the images of a job into a directory, named by a
//! layout (default `task-{index:05}-{image}.png`).
//!
//! - [`layout`]: file names from a template (`--layout`).
//! - [`resume`]: images already there with their recorded hash are skipped,
//!   so an interrupted download fetches only the rest.
//! - [`presigned`]: with S3 storage the coordinator signs short-lived URLs
//!   (`OutputUrls`) and the images come straight from the bucket, the
//!   coordinator out of the data path.
//! - [`streamed`]: storage that cannot sign (`file://`, as under
//!   `fresco dev`) answers FAILED_PRECONDITION; the images then stream
//!   through the coordinator (`ReadOutput`).
//! - [`file`]: each image is written as `.part` beside its name and renamed
//!   once it holds the bytes the coordinator recorded (size and SHA-256).
//!
//! Either way up to `--jobs` images are fetched at once. `--since` keeps
//! the images of tasks that finished at or after a time, so a running job
//! can be mirrored a little at a time.

mod file;
pub mod layout;
mod presigned;
mod resume;
mod streamed;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use fresco_proto::v1 as pb;
use futures::{StreamExt, TryStreamExt};

use crate::Failure;
use crate::args::DownloadArgs;
use crate::client::Client;
use crate::commands::status::all_tasks;
use layout::Layout;

/// One image to fetch: its key, the size and SHA-256 the coordinator
/// recorded (the hash empty when none was), and the file it goes to.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub key: String,
    pub bytes: u64,
    pub sha256: String,
    pub to: PathBuf,
}

/// Which way the images came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Straight from the object store, through presigned URLs.
    Direct,
    /// Through the coordinator (`ReadOutput`).
    Streamed,
}

/// What one download did.
#[derive(Debug)]
struct Outcome {
    fetched: Vec<Wanted>,
    skipped: usize,
    route: Option<Route>,
}

pub async fn run(target: &crate::client::Target, args: DownloadArgs) -> Result<(), Failure> {
    let mut client = crate::client::connect(target).await?;
    download(&mut client, &args).await
}

/// Fetches the job's recorded images into `args.out`, skipping those
/// already there.
pub async fn download(client: &mut Client, args: &DownloadArgs) -> Result<(), Failure> {
    let layout = Layout::parse(&args.layout)
        .map_err(|why| Failure::Invalid(format!("--layout {:?}: {why}", args.layout)))?;
    let tasks = all_tasks(client, &args.job_id).await?;
    let selected = finished_since(&tasks, args.since);
    let wanted = plan(&selected, &layout, &args.out)?;
    tokio::fs::create_dir_all(&args.out)
        .await
        .with_context(|| format!("creating {}", args.out.display()))?;
    let outcome = fetch_missing(client, args, wanted).await?;
    report(args, &tasks, &outcome);
    Ok(())
}

/// The tasks with images whose task finished at or after `since` (every
/// task with images when `since` is unset).
fn finished_since(tasks: &[pb::Task], since: Option<SystemTime>) -> Vec<&pb::Task> {
    tasks
        .iter()
        .filter(|task| !task.outputs.is_empty())
        .filter(|task| match since {
            None => true,
            Some(since) => finished_at(task).is_some_and(|at| at >= since),
        })
        .collect()
}

fn finished_at(task: &pb::Task) -> Option<SystemTime> {
    task.finished_at
        .and_then(|at| SystemTime::try_from(at).ok())
}

/// Every image of `tasks` with the file the layout gives it under `out`;
/// refused when the layout gives two images one file.
fn plan(tasks: &[&pb::Task], layout: &Layout, out: &Path) -> Result<Vec<Wanted>, Failure> {
    let mut named: HashMap<PathBuf, (u32, u32)> = HashMap::new();
    let mut wanted = Vec::new();
    for task in tasks {
        for output in &task.outputs {
            let name = layout
                .path_of(task, output)
                .map_err(|why| Failure::Invalid(format!("--layout: {why}")))?;
            if let Some((other_task, other_image)) =
                named.insert(name.clone(), (task.index, output.index))
            {
                return Err(Failure::Invalid(format!(
                    "--layout gives image {other_image} of task {other_task} and image {} of \
                     task {} the same file {}: add fields that tell them apart, such as \
                     {{task}} and {{image}}",
                    output.index,
                    task.index,
                    name.display()
                )));
            }
            wanted.push(Wanted {
                key: output.key.clone(),
                bytes: output.bytes,
                sha256: output.sha256.clone(),
                to: out.join(name),
            });
        }
    }
    Ok(wanted)
}

/// Fetches each of `wanted` that is not already there.
async fn fetch_missing(
    client: &mut Client,
    args: &DownloadArgs,
    wanted: Vec<Wanted>,
) -> Result<Outcome, Failure> {
    let jobs = usize::from(args.jobs);
    let present: Vec<bool> = futures::stream::iter(wanted.iter().map(resume::present))
        .buffered(jobs)
        .collect()
        .await;
    let total = wanted.len();
    let fetched: Vec<Wanted> = wanted
        .into_iter()
        .zip(present)
        .filter_map(|(wanted, present)| (!present).then_some(wanted))
        .collect();
    let route = if fetched.is_empty() {
        None
    } else {
        Some(fetch(client, &args.job_id, &fetched, jobs).await?)
    };
    Ok(Outcome {
        skipped: total - fetched.len(),
        fetched,
        route,
    })
}

/// Says what was fetched, how, and what was left.
fn report(args: &DownloadArgs, tasks: &[pb::Task], outcome: &Outcome) {
    let bytes: u64 = outcome.fetched.iter().map(|w| w.bytes).sum();
    let unfinished = tasks.iter().filter(|t| t.outputs.is_empty()).count();
    eprintln!(
        "downloaded {} images ({bytes} bytes) into {}{}; skipped {} already there{}",
        outcome.fetched.len(),
        args.out.display(),
        match outcome.route {
            Some(Route::Direct) => " straight from the object store",
            Some(Route::Streamed) => " through the coordinator",
            None => "",
        },
        outcome.skipped,
        if unfinished > 0 {
            format!("; {unfinished} tasks have no images yet")
        } else {
            String::new()
        }
    );
    let newest = tasks.iter().filter_map(finished_at).max();
    if let (Some(newest), true) = (newest, unfinished > 0) {
        eprintln!(
            "to fetch only what finishes from now on: --since {}",
            humantime::format_rfc3339_micros(newest)
        );
    }
}

/// Presigned URLs when the coordinator signs them, else streaming.
async fn fetch(
    client: &mut Client,
    job_id: &str,
    wanted: &[Wanted],
    jobs: usize,
) -> Result<Route, Failure> {
    match presigned::fetch(client, job_id, wanted, jobs).await? {
        presigned::Fetched::Done => Ok(Route::Direct),
        presigned::Fetched::CannotSign => {
            streamed::fetch(client, wanted, jobs).await?;
            Ok(Route::Streamed)
        }
    }
}

/// Runs `fetch` on each of `wanted`, at most `jobs` at once, until all
/// succeed or one fails.
async fn for_each<'a, F, Fut>(wanted: &'a [Wanted], jobs: usize, fetch: F) -> Result<(), Failure>
where
    F: Fn(&'a Wanted) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    futures::stream::iter(wanted.iter().map(fetch))
        .buffer_unordered(jobs)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}
