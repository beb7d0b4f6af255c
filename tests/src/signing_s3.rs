//! The S3 server that checks signatures, for the tests of presigned URLs.
//!
//! moto's S3 server, where a farm keeps its outputs by default, serves a
//! presigned URL whatever its signature and expiry, so it cannot show that
//! an expired URL, or one edited to name another object, is refused.
//! `scripts/services.sh` therefore also starts `scripts/signing-s3.js`
//! (npm's @20minutes/s3rver), which verifies them, with a key pair of its
//! own and the same bucket name, and exports where it is
//! (`FRESCO_TEST_SIGNING_S3_ENDPOINT`, `_KEY_ID`, `_SECRET`). A farm started
//! with [`FarmOptions::storage`](crate::FarmOptions::storage) set to
//! [`TestStorage::signing_from_env`] keeps its outputs there; the test reads
//! them back through [`TestStorage::store`], object_store's own S3 client,
//! not fresco's code.
//!
//! It accepts only its own key pair and path-style requests; it does not
//! refuse unsigned requests, so "no signature" cannot be tested on it.

use std::collections::BTreeSet;

use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

/// An S3 server and bucket, with the credentials to use them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestStorage {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
    pub bucket: String,
}

impl TestStorage {
    /// The signing server `scripts/services.sh` started, from the
    /// `FRESCO_TEST_SIGNING_S3_*` variables and `FRESCO_TEST_BUCKET`; `None`
    /// when any of them is unset or empty.
    pub fn signing_from_env() -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        Some(Self {
            endpoint: var("FRESCO_TEST_SIGNING_S3_ENDPOINT")?,
            key_id: var("FRESCO_TEST_SIGNING_S3_KEY_ID")?,
            secret: var("FRESCO_TEST_SIGNING_S3_SECRET")?,
            bucket: var("FRESCO_TEST_BUCKET")?,
        })
    }

    /// The variables that point fresco's S3 client (object_store configured
    /// from the `AWS_*` variables) at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", self.key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
    }

    /// object_store's S3 client of the bucket, configured from these fields
    /// alone (the test process's `AWS_*` variables name moto).
    pub fn store(&self) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_access_key_id(&self.key_id)
            .with_secret_access_key(&self.secret)
            .with_region("us-east-1")
            .with_allow_http(true)
            .with_bucket_name(&self.bucket)
            .build()
            .expect("an S3 client of the signing server")
    }

    /// Every object key under `prefix` in the bucket.
    pub async fn keys(&self, prefix: &str) -> BTreeSet<String> {
        let prefix = Path::from(prefix);
        self.store()
            .list(Some(&prefix))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("listing {prefix} on {}: {e}", self.endpoint))
    }

    /// The bytes of the object `key`.
    pub async fn get(&self, key: &str) -> Vec<u8> {
        let got = self
            .store()
            .get(&Path::from(key))
            .await
            .unwrap_or_else(|e| panic!("reading {key} on {}: {e}", self.endpoint));
        got.bytes().await.expect("the object's bytes").to_vec()
    }
}
