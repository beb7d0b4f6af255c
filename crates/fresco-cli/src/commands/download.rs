//! `fresco download`: fetches every image of a job through the coordinator
//! into a directory, as `task-{index:05}-{image}.png`.

use std::path::Path;

use anyhow::Context;
use fresco_proto::v1 as pb;
use tokio::io::AsyncWriteExt;
use tokio_stream::StreamExt;

use crate::Failure;
use crate::args::DownloadArgs;
use crate::client::{Client, Target};
use crate::commands::status::all_tasks;

async fn fetch(client: &mut Client, key: &str, to: &Path) -> Result<u64, Failure> {
    let mut stream = client
        .read_output(pb::ReadOutputRequest {
            key: key.to_owned(),
        })
        .await?
        .into_inner();
    let partial = to.with_extension("png.part");
    let mut file = tokio::fs::File::create(&partial)
        .await
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut bytes = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        bytes += chunk.data.len() as u64;
        file.write_all(&chunk.data)
            .await
            .with_context(|| format!("writing {}", partial.display()))?;
    }
    file.flush().await.context("flushing")?;
    tokio::fs::rename(&partial, to)
        .await
        .with_context(|| format!("renaming to {}", to.display()))?;
    Ok(bytes)
}

pub async fn run(target: &Target, args: DownloadArgs) -> Result<(), Failure> {
    let mut client = crate::client::connect(target).await?;
    let tasks = all_tasks(&mut client, &args.job_id).await?;
    tokio::fs::create_dir_all(&args.out)
        .await
        .with_context(|| format!("creating {}", args.out.display()))?;
    let (mut files, mut bytes) = (0u64, 0u64);
    for task in &tasks {
        for output in &task.outputs {
            let to = args
                .out
                .join(format!("task-{:05}-{}.png", task.index, output.index));
            bytes += fetch(&mut client, &output.key, &to).await?;
            files += 1;
        }
    }
    let unfinished = tasks.iter().filter(|t| t.outputs.is_empty()).count();
    eprintln!(
        "downloaded {files} images ({bytes} bytes) into {}{}",
        args.out.display(),
        if unfinished > 0 {
            format!("; {unfinished} tasks have no images yet")
        } else {
            String::new()
        }
    );
    Ok(())
}
