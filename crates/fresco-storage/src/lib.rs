//! Output storage named by URL: `s3://bucket/prefix` (endpoint and
//! credentials from the standard `AWS_*` variables) or `file:///dir`.
//!
//! [`Storage`] pairs an object store with the key prefix from the URL, and
//! retries transient errors with backoff (object_store's retry policy). An
//! S3 store also signs GET URLs ([`Storage::signed_get_url`]), so a client
//! downloads an object straight from the bucket; `file://` cannot. An
//! object of any size is written in flat memory through
//! [`Storage::writer`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fresco_core::status::{ErrorCode, ServiceError};
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::signer::{Method, Signer};
use object_store::{ObjectStore, ObjectStoreExt, RetryConfig};
use tokio::io::AsyncWriteExt;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage URL {url:?}: {why}")]
    BadUrl { url: String, why: String },
    #[error("storage: {0}")]
    Store(#[from] object_store::Error),
    #[error("object key {0:?} is not valid")]
    BadKey(String),
    /// The store cannot hand out signed URLs (`file://`).
    #[error("storage {0} cannot sign URLs")]
    CannotSign(String),
}

impl ServiceError for StorageError {
    fn error_code(&self) -> ErrorCode {
        match self {
            // A farm started with a URL it cannot use: nothing a caller can fix.
            StorageError::BadUrl { .. } => ErrorCode::Internal,
            StorageError::BadKey(_) => ErrorCode::InvalidArgument,
            // A `file://` farm streams its outputs instead.
            StorageError::CannotSign(_) => ErrorCode::Conflict,
            StorageError::Store(object_store::Error::NotFound { .. }) => ErrorCode::NotFound,
            // The object store is away or failed past its retries.
            StorageError::Store(_) => ErrorCode::Unavailable,
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// An object store and the key prefix every fresco object lives under.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// The same store as a URL signer, when it can sign (S3).
    signer: Option<Arc<dyn Signer>>,
    prefix: String,
    url: String,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("url", &self.url).finish()
    }
}

fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 5,
        retry_timeout: Duration::from_secs(60),
        ..RetryConfig::default()
    }
}

impl Storage {
    /// Opens the store a URL names. `file://` directories are created.
    pub fn from_url(url: &str) -> Result<Self> {
        let bad = |why: &str| StorageError::BadUrl {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let parsed = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        let (store, signer, prefix): (Arc<dyn ObjectStore>, Option<Arc<dyn Signer>>, String) =
            match parsed.scheme() {
                "s3" => {
                    let bucket = parsed
                        .host_str()
                        .filter(|b| !b.is_empty())
                        .ok_or_else(|| bad("names no bucket"))?;
                    let store = Arc::new(
                        AmazonS3Builder::from_env()
                            .with_bucket_name(bucket)
                            .with_retry(retry())
                            .build()?,
                    );
                    let prefix = parsed.path().trim_matches('/').to_owned();
                    (store.clone(), Some(store), prefix)
                }
                "file" => {
                    let dir = parsed
                        .to_file_path()
                        .map_err(|()| bad("is not an absolute file path"))?;
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| bad(&format!("cannot create {}: {e}", dir.display())))?;
                    let store = LocalFileSystem::new_with_prefix(&dir)?;
                    (Arc::new(store), None, String::new())
                }
                other => {
                    return Err(bad(&format!(
                        "unsupported scheme {other:?} (use s3:// or file://)"
                    )));
                }
            };
        Ok(Self {
            store,
            signer,
            prefix,
            url: url.to_owned(),
        })
    }

    /// The key prefix from the URL's path (empty for `file://`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(key: &str) -> Result<Path> {
        Path::parse(key).map_err(|_| StorageError::BadKey(key.to_owned()))
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.store.put(&Self::path(key)?, bytes.into()).await?;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Bytes> {
        Ok(self.store.get(&Self::path(key)?).await?.bytes().await?)
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        self.store.delete(&Self::path(key)?).await?;
        Ok(())
    }

    /// Every key under the folder `prefix` (a `/`-separated key path; a
    /// trailing `/` is ignored), in no particular order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let dir = Self::path(prefix.trim_end_matches('/'))?;
        let objects: Vec<_> = self.store.list(Some(&dir)).try_collect().await?;
        Ok(objects
            .into_iter()
            .map(|o| o.location.to_string())
            .collect())
    }

    /// A writer of the object `key`, in parts as they come: buffered up to
    /// [`WRITER_PART_BYTES`] and then a multipart upload, so memory stays
    /// flat however large the object. The object appears whole, replacing
    /// any before it, once [`ObjectWriter::finish`] returns.
    pub fn writer(&self, key: &str) -> Result<ObjectWriter> {
        let writer =
            BufWriter::with_capacity(self.store.clone(), Self::path(key)?, WRITER_PART_BYTES);
        Ok(ObjectWriter {
            writer,
            key: key.to_owned(),
        })
    }

    /// Whether this storage can sign URLs ([`Storage::signed_get_url`]).
    pub fn can_sign(&self) -> bool {
        self.signer.is_some()
    }

    /// A URL that lets whoever holds it GET the object `key` straight from
    /// the store, without credentials, for `expires_in` (S3 presigned URLs,
    /// signed locally with the store's credentials: no request is made).
    /// [`StorageError::CannotSign`] for `file://`.
    pub async fn signed_get_url(&self, key: &str, expires_in: Duration) -> Result<Url> {
        let signer = self
            .signer
            .as_ref()
            .ok_or_else(|| StorageError::CannotSign(self.url.clone()))?;
        Ok(signer
            .signed_url(Method::GET, &Self::path(key)?, expires_in)
            .await?)
    }

    /// Whether an object exists.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        match self.store.head(&Self::path(key)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// The bytes an [`ObjectWriter`] buffers before it uploads a part.
pub const WRITER_PART_BYTES: usize = 8 << 20;

/// An object being written by [`Storage::writer`].
pub struct ObjectWriter {
    writer: BufWriter,
    key: String,
}

impl ObjectWriter {
    /// Appends `bytes`. On failure the upload is abandoned (its parts
    /// deleted where the store can), and nothing appears.
    pub async fn put(&mut self, bytes: Bytes) -> Result<()> {
        if let Err(err) = self.writer.put(bytes).await {
            if let Err(abort) = self.writer.abort().await {
                tracing::warn!(key = %self.key, error = %abort, "could not abandon a failed upload");
            }
            return Err(err.into());
        }
        Ok(())
    }

    /// Completes the upload: the object appears whole.
    pub async fn finish(mut self) -> Result<()> {
        self.writer.shutdown().await.map_err(|e| {
            StorageError::Store(object_store::Error::Generic {
                store: "writer",
                source: Box::new(e),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_urls_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("out").display());
        let storage = Storage::from_url(&url).unwrap();
        storage
            .put("a/b/0.png", Bytes::from_static(b"png"))
            .await
            .unwrap();
        assert_eq!(
            storage.get("a/b/0.png").await.unwrap(),
            Bytes::from_static(b"png")
        );
        assert!(storage.exists("a/b/0.png").await.unwrap());
        assert!(!storage.exists("a/b/1.png").await.unwrap());
        assert!(dir.path().join("out/a/b/0.png").is_file());
    }

    #[tokio::test]
    async fn a_listing_holds_every_key_under_a_folder_and_nothing_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::from_url(&format!("file://{}", dir.path().display())).unwrap();
        for key in ["j/t/1/0.png", "j/t/2/0.png", "j/t/2/1.png", "j/t2/1/0.png"] {
            storage.put(key, Bytes::from_static(b"png")).await.unwrap();
        }
        let mut keys = storage.list("j/t/").await.unwrap();
        keys.sort();
        assert_eq!(keys, ["j/t/1/0.png", "j/t/2/0.png", "j/t/2/1.png"]);
        assert!(storage.list("j/none/").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_written_object_appears_whole_once_finished() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::from_url(&format!("file://{}", dir.path().display())).unwrap();
        let mut writer = storage.writer("j/manifest.jsonl").unwrap();
        let line = Bytes::from(vec![b'x'; 1 << 20]);
        for _ in 0..10 {
            writer.put(line.clone()).await.unwrap();
        }
        writer.finish().await.unwrap();
        let got = storage.get("j/manifest.jsonl").await.unwrap();
        assert_eq!(got.len(), 10 << 20, "past one part: a multipart upload");
        assert!(got.iter().all(|b| *b == b'x'));
    }

    #[tokio::test]
    async fn file_storage_cannot_sign_urls() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::from_url(&format!("file://{}", dir.path().display())).unwrap();
        assert!(!storage.can_sign());
        let err = storage
            .signed_get_url("a/0.png", Duration::from_secs(60))
            .await
            .unwrap_err();
        assert_eq!(err.error_code(), ErrorCode::Conflict);
        assert!(err.to_string().contains("cannot sign URLs"), "{err}");
    }

    #[test]
    fn bad_urls_say_why() {
        for url in ["ftp://x/y", "not a url", "s3:///prefix"] {
            let err = Storage::from_url(url).unwrap_err().to_string();
            assert!(err.contains(url), "{err}");
        }
    }
}
