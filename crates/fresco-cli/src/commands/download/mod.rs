//! `fresco download`: every image of a job into a directory, as
//! `task-{index:05}-{image}.png`.
//!
//! - [`presigned`]: with S3 storage the coordinator signs short-lived URLs
//!   (`OutputUrls`) and the images come straight from the bucket, the
//!   coordinator out of the data path.
//! - [`streamed`]: storage that cannot sign (`file://`, as under
//!   `fresco dev`) answers FAILED_PRECONDITION; the images then stream
//!   through the coordinator (`ReadOutput`).
//! - [`file`]: each image is written as `.part` beside its name and renamed
//!   once it holds the bytes the coordinator recorded, no more, no fewer.
//!
//! Either way up to [`CONCURRENCY`] images are fetched at once.

mod file;
mod presigned;
mod streamed;

use std::path::{Path, PathBuf};

use anyhow::Context;
use fresco_proto::v1 as pb;
use futures::{StreamExt, TryStreamExt};

use crate::Failure;
use crate::args::DownloadArgs;
use crate::client::Client;
use crate::commands::status::all_tasks;

/// The most images fetched at once.
pub const CONCURRENCY: usize = 8;

/// One image to fetch: its key, the size the coordinator recorded, and the
/// file it goes to.
#[derive(Debug)]
pub struct Wanted {
    pub key: String,
    pub bytes: u64,
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

pub async fn run(target: &crate::client::Target, args: DownloadArgs) -> Result<(), Failure> {
    let mut client = crate::client::connect(target).await?;
    download(&mut client, &args).await
}

/// Fetches every recorded image of the job into `args.out`.
pub async fn download(client: &mut Client, args: &DownloadArgs) -> Result<(), Failure> {
    let tasks = all_tasks(client, &args.job_id).await?;
    tokio::fs::create_dir_all(&args.out)
        .await
        .with_context(|| format!("creating {}", args.out.display()))?;
    let wanted = wanted(&tasks, &args.out);
    let route = if wanted.is_empty() {
        None
    } else {
        Some(fetch(client, &args.job_id, &wanted).await?)
    };
    let bytes: u64 = wanted.iter().map(|w| w.bytes).sum();
    let unfinished = tasks.iter().filter(|t| t.outputs.is_empty()).count();
    eprintln!(
        "downloaded {} images ({bytes} bytes) into {}{}{}",
        wanted.len(),
        args.out.display(),
        match route {
            Some(Route::Direct) => " straight from the object store",
            Some(Route::Streamed) => " through the coordinator",
            None => "",
        },
        if unfinished > 0 {
            format!("; {unfinished} tasks have no images yet")
        } else {
            String::new()
        }
    );
    Ok(())
}

/// Presigned URLs when the coordinator signs them, else streaming.
async fn fetch(client: &mut Client, job_id: &str, wanted: &[Wanted]) -> Result<Route, Failure> {
    match presigned::fetch(client, job_id, wanted).await? {
        presigned::Fetched::Done => Ok(Route::Direct),
        presigned::Fetched::CannotSign => {
            streamed::fetch(client, wanted).await?;
            Ok(Route::Streamed)
        }
    }
}

/// Every recorded image of `tasks`, with the file it goes to under `out`.
fn wanted(tasks: &[pb::Task], out: &Path) -> Vec<Wanted> {
    tasks
        .iter()
        .flat_map(|task| {
            task.outputs.iter().map(|output| Wanted {
                key: output.key.clone(),
                bytes: output.bytes,
                to: out.join(format!("task-{:05}-{}.png", task.index, output.index)),
            })
        })
        .collect()
}

/// Runs `fetch` on each of `wanted`, at most [`CONCURRENCY`] at once,
/// until all succeed or one fails.
async fn for_each<'a, F, Fut>(wanted: &'a [Wanted], fetch: F) -> Result<(), Failure>
where
    F: Fn(&'a Wanted) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    futures::stream::iter(wanted.iter().map(fetch))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}
