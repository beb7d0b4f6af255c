//! Downloads through the coordinator: each image streams in chunks over
//! `ReadOutput`, for storage that cannot sign URLs (`file://`).

use anyhow::anyhow;
use fresco_proto::v1 as pb;
use futures::StreamExt;

use super::{Wanted, file, for_each};
use crate::Failure;
use crate::client::Client;

pub async fn fetch(client: &Client, wanted: &[Wanted], jobs: usize) -> Result<(), Failure> {
    for_each(wanted, jobs, |wanted| read(client.clone(), wanted)).await
}

async fn read(mut client: Client, wanted: &Wanted) -> Result<(), Failure> {
    let stream = client
        .read_output(pb::ReadOutputRequest {
            key: wanted.key.clone(),
        })
        .await?
        .into_inner();
    let chunks = stream.map(|chunk| {
        chunk.map(|c| c.data).map_err(|status| {
            anyhow!(
                "reading {} through the coordinator: {}",
                wanted.key,
                status.message()
            )
        })
    });
    file::write(wanted, chunks).await
}
