//! Writing one downloaded image: chunks go to `<name>.part`, which is
//! renamed to its name only once it holds exactly the bytes the coordinator
//! recorded; a short, long or broken download leaves no file behind.

use anyhow::{Context, anyhow};
use futures::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use super::Wanted;
use crate::Failure;

/// Writes `chunks` to `wanted.to`, checking their total against
/// `wanted.bytes`.
pub async fn write<S, B>(wanted: &Wanted, chunks: S) -> Result<(), Failure>
where
    S: Stream<Item = anyhow::Result<B>>,
    B: AsRef<[u8]>,
{
    let partial = wanted.to.with_extension("png.part");
    let written = write_partial(&partial, chunks).await;
    let checked = written.and_then(|got| {
        if got == wanted.bytes {
            Ok(())
        } else {
            Err(anyhow!(
                "{}: received {got} bytes, but the coordinator recorded {}",
                wanted.key,
                wanted.bytes
            ))
        }
    });
    if let Err(err) = checked {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(err.into());
    }
    tokio::fs::rename(&partial, &wanted.to)
        .await
        .with_context(|| format!("renaming {} to {}", partial.display(), wanted.to.display()))?;
    Ok(())
}

/// The chunks into `partial`; how many bytes they held.
async fn write_partial<S, B>(partial: &std::path::Path, chunks: S) -> anyhow::Result<u64>
where
    S: Stream<Item = anyhow::Result<B>>,
    B: AsRef<[u8]>,
{
    let mut file = tokio::fs::File::create(partial)
        .await
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut chunks = std::pin::pin!(chunks);
    let mut bytes = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        let chunk = chunk.as_ref();
        bytes += chunk.len() as u64;
        file.write_all(chunk)
            .await
            .with_context(|| format!("writing {}", partial.display()))?;
    }
    file.flush()
        .await
        .with_context(|| format!("flushing {}", partial.display()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = anyhow::Result<&'static [u8]>> {
        futures::stream::iter(parts.iter().map(|p| Ok(*p)).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn a_file_appears_only_with_the_recorded_size() {
        let dir = tempfile::tempdir().expect("temp dir");
        let wanted = Wanted {
            key: "j/t/1/0.png".into(),
            bytes: 5,
            to: dir.path().join("task-00000-0.png"),
        };
        write(&wanted, chunks(&[b"ab", b"cde"]))
            .await
            .expect("written");
        assert_eq!(std::fs::read(&wanted.to).expect("the file"), b"abcde");

        let short = Wanted {
            to: dir.path().join("task-00001-0.png"),
            ..wanted
        };
        let Err(Failure::Other(err)) = write(&short, chunks(&[b"abc"])).await else {
            panic!("a short download must fail");
        };
        assert_eq!(
            err.to_string(),
            "j/t/1/0.png: received 3 bytes, but the coordinator recorded 5"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("listing")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(
            left,
            ["task-00000-0.png"],
            "no partial or short file is left"
        );
    }
}
