//! Writing one downloaded image: chunks go to `<name>.part`, which is
//! renamed to its name only once it holds exactly the bytes the coordinator
//! recorded (their count, and their SHA-256 where one was recorded); a
//! short, long, corrupt or broken download leaves no file behind.

use std::path::Path;

use anyhow::{Context, anyhow};
use fresco_core::digest::hex;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::Wanted;
use crate::Failure;

/// What was written: its size and its SHA-256 (lower-case hex).
struct Written {
    bytes: u64,
    sha256: String,
}

/// Writes `chunks` to `wanted.to`, checking them against what the
/// coordinator recorded for `wanted`.
pub async fn write<S, B>(wanted: &Wanted, chunks: S) -> Result<(), Failure>
where
    S: Stream<Item = anyhow::Result<B>>,
    B: AsRef<[u8]>,
{
    let partial = partial_of(&wanted.to);
    let written = write_partial(&partial, chunks).await;
    if let Err(err) = written.and_then(|got| check(wanted, &got)) {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(err.into());
    }
    tokio::fs::rename(&partial, &wanted.to)
        .await
        .with_context(|| format!("renaming {} to {}", partial.display(), wanted.to.display()))?;
    Ok(())
}

/// `<name>.part` beside `to`.
fn partial_of(to: &Path) -> std::path::PathBuf {
    let mut name = to.as_os_str().to_owned();
    name.push(".part");
    name.into()
}

fn check(wanted: &Wanted, got: &Written) -> anyhow::Result<()> {
    if got.bytes != wanted.bytes {
        return Err(anyhow!(
            "{}: received {} bytes, but the coordinator recorded {}",
            wanted.key,
            got.bytes,
            wanted.bytes
        ));
    }
    if !wanted.sha256.is_empty() && got.sha256 != wanted.sha256 {
        return Err(anyhow!(
            "{}: received bytes with SHA-256 {}, but the coordinator recorded {}",
            wanted.key,
            got.sha256,
            wanted.sha256
        ));
    }
    Ok(())
}

/// The chunks into `partial`.
async fn write_partial<S, B>(partial: &Path, chunks: S) -> anyhow::Result<Written>
where
    S: Stream<Item = anyhow::Result<B>>,
    B: AsRef<[u8]>,
{
    if let Some(parent) = partial.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut file = tokio::fs::File::create(partial)
        .await
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut chunks = std::pin::pin!(chunks);
    let mut bytes = 0u64;
    let mut hasher = Sha256::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        let chunk = chunk.as_ref();
        bytes += chunk.len() as u64;
        hasher.update(chunk);
        file.write_all(chunk)
            .await
            .with_context(|| format!("writing {}", partial.display()))?;
    }
    file.flush()
        .await
        .with_context(|| format!("flushing {}", partial.display()))?;
    Ok(Written {
        bytes,
        sha256: hex(&hasher.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = anyhow::Result<&'static [u8]>> {
        futures::stream::iter(parts.iter().map(|p| Ok(*p)).collect::<Vec<_>>())
    }

    fn listing(dir: &Path) -> Vec<std::ffi::OsString> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .expect("listing")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_file_appears_only_with_the_recorded_size_and_hash() {
        let dir = tempfile::tempdir().expect("temp dir");
        let wanted = Wanted {
            key: "j/t/1/0.png".into(),
            bytes: 5,
            // SHA-256 of "abcde".
            sha256: "36bbe50ed96841d10443bcb670d6554f0a34b761be67ec9c4a8ad2c0c44ca42c".into(),
            to: dir.path().join("nested/task-00000-0.png"),
        };
        write(&wanted, chunks(&[b"ab", b"cde"]))
            .await
            .expect("written");
        assert_eq!(std::fs::read(&wanted.to).expect("the file"), b"abcde");

        let short = Wanted {
            to: dir.path().join("nested/task-00001-0.png"),
            ..wanted.clone()
        };
        let Err(Failure::Other(err)) = write(&short, chunks(&[b"abc"])).await else {
            panic!("a short download must fail");
        };
        assert_eq!(
            err.to_string(),
            "j/t/1/0.png: received 3 bytes, but the coordinator recorded 5"
        );
        let corrupt = Wanted {
            to: dir.path().join("nested/task-00002-0.png"),
            ..wanted
        };
        let Err(Failure::Other(err)) = write(&corrupt, chunks(&[b"abcdf"])).await else {
            panic!("a corrupt download must fail");
        };
        assert!(err.to_string().contains("with SHA-256"), "{err}");
        assert_eq!(
            listing(&dir.path().join("nested")),
            ["task-00000-0.png"],
            "no partial, short or corrupt file is left"
        );
    }
}
