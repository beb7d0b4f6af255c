//! What a farm's three stores hold, read through paths independent of
//! fresco's own code: Postgres by raw SQL, Redis by raw commands, the bucket
//! by object_store's S3 listing. A test takes a [`Snapshot`] before and
//! after something that must change nothing, and compares the two.

use std::collections::{BTreeMap, BTreeSet};

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::Farm;

/// The tables fresco keeps its truth in, each with the statement that
/// counts its rows and digests all of them.
const TABLES: &[(&str, &str)] = &[
    (
        "jobs",
        "SELECT count(*), md5(coalesce(string_agg(r::TEXT, '|' ORDER BY r::TEXT), '')) FROM jobs r",
    ),
    (
        "tasks",
        "SELECT count(*), md5(coalesce(string_agg(r::TEXT, '|' ORDER BY r::TEXT), '')) FROM tasks r",
    ),
    (
        "outputs",
        "SELECT count(*), md5(coalesce(string_agg(r::TEXT, '|' ORDER BY r::TEXT), '')) FROM outputs r",
    ),
    (
        "api_keys",
        "SELECT count(*), md5(coalesce(string_agg(r::TEXT, '|' ORDER BY r::TEXT), '')) FROM api_keys r",
    ),
    // Every column but `last_seen_at`, which the farm's own idle workers
    // refresh with a ping each heartbeat interval.
    (
        "workers",
        "SELECT count(*), md5(coalesce(string_agg((to_jsonb(r) - 'last_seen_at')::TEXT, '|' ORDER BY r.id), '')) FROM workers r",
    ),
    (
        "tenants",
        "SELECT count(*), md5(coalesce(string_agg(r::TEXT, '|' ORDER BY r::TEXT), '')) FROM tenants r",
    ),
    (
        "tenant_usage",
        "SELECT count(*), md5(coalesce(string_agg(r::TEXT, '|' ORDER BY r::TEXT), '')) FROM tenant_usage r",
    ),
];

/// Every row of every table, every Redis key with its length, every object
/// under the farm's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Per table: its row count and a digest of all its rows.
    pub postgres: BTreeMap<&'static str, (i64, String)>,
    /// Per key: its type and length (members, items or bytes).
    pub redis: BTreeMap<String, (String, i64)>,
    /// Every object key under the farm's prefix.
    pub bucket: BTreeSet<String>,
}

/// Every object key under the prefix of the `s3://bucket/prefix` URL, listed
/// by object_store's S3 client configured from the `AWS_*` variables.
pub async fn bucket_keys(storage_url: &str) -> BTreeSet<String> {
    let rest = storage_url
        .strip_prefix("s3://")
        .unwrap_or_else(|| panic!("{storage_url} is not an s3:// URL"));
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let store = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()
        .expect("an S3 client from the AWS_* variables");
    let prefix = Path::from(prefix);
    store
        .list(Some(&prefix))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("listing {storage_url}: {e}"))
}

async fn postgres(pool: &sqlx::PgPool) -> BTreeMap<&'static str, (i64, String)> {
    let mut tables = BTreeMap::new();
    for (table, sql) in TABLES {
        let row: (i64, String) = sqlx::query_as(*sql)
            .fetch_one(pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        tables.insert(*table, row);
    }
    tables
}

async fn redis(
    connection: &mut redis::aio::MultiplexedConnection,
) -> BTreeMap<String, (String, i64)> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(connection)
        .await
        .expect("KEYS");
    let mut lengths = BTreeMap::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(connection)
            .await
            .expect("TYPE");
        let length_command = match kind.as_str() {
            "zset" => "ZCARD",
            "list" => "LLEN",
            "set" => "SCARD",
            "hash" => "HLEN",
            _ => "STRLEN",
        };
        let length: i64 = redis::cmd(length_command)
            .arg(&key)
            .query_async(connection)
            .await
            .unwrap_or_else(|e| panic!("{length_command} {key}: {e}"));
        lengths.insert(key, (kind, length));
    }
    lengths
}

impl Farm {
    /// What the farm's Postgres, Redis and bucket prefix hold now.
    pub async fn snapshot(&self) -> Snapshot {
        let pool = self.db.pool().await;
        let mut connection = self.redis.connection().await;
        Snapshot {
            postgres: postgres(&pool).await,
            redis: redis(&mut connection).await,
            bucket: bucket_keys(&self.storage_url).await,
        }
    }

    /// Every object key under the farm's prefix (see [`bucket_keys`]).
    pub async fn bucket_keys(&self) -> BTreeSet<String> {
        bucket_keys(&self.storage_url).await
    }

    /// The bytes of `key` in the farm's bucket, read by object_store's own
    /// S3 client (configured from the `AWS_*` variables), not fresco's code.
    pub async fn bucket_object(&self, key: &str) -> Vec<u8> {
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(&self.services.bucket)
            .build()
            .expect("an S3 client from the AWS_* variables");
        let got = store
            .get(&Path::from(key))
            .await
            .unwrap_or_else(|e| panic!("reading {key}: {e}"));
        got.bytes().await.expect("the object's bytes").to_vec()
    }
}
