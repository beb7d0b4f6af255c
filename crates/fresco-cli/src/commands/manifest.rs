//! `fresco manifest JOB`: every image of a job with what made it (one row
//! per image, one per task that made none, with its error history), from
//! `JobManifest`, written row by row as JSON Lines, CSV or Parquet to
//! stdout or a file (see [`crate::tables`]).

use std::fs::File;
use std::io::{BufWriter, Write};

use anyhow::Context;
use fresco_core::manifest::ManifestRow;
use fresco_proto::v1 as pb;
use tokio_stream::StreamExt;

use crate::args::ManifestArgs;
use crate::client::Target;
use crate::tables::TableWriter;
use crate::{Failure, client};

pub async fn run(target: &Target, args: ManifestArgs) -> Result<(), Failure> {
    let mut client = client::connect(target).await?;
    let mut rows = client
        .job_manifest(pb::JobManifestRequest {
            job_id: args.job_id.clone(),
        })
        .await?
        .into_inner();
    let out: Box<dyn Write + Send> = match &args.out {
        Some(path) => {
            Box::new(File::create(path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => Box::new(std::io::stdout()),
    };
    let mut table = TableWriter::new(args.format, BufWriter::new(out))?;
    let mut written = 0u64;
    while let Some(row) = rows.next().await {
        table.write(&ManifestRow::from_proto(&row?))?;
        written += 1;
    }
    table.finish()?;
    if let Some(path) = &args.out {
        eprintln!(
            "wrote {written} manifest rows of job {} to {}",
            args.job_id,
            path.display()
        );
    }
    Ok(())
}
