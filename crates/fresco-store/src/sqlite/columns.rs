//! How the SQLite store reads a fetched column and binds a value: UUIDs as
//! hyphenated TEXT, timestamps as INTEGER milliseconds since the Unix
//! epoch, lists and errors as JSON TEXT; for the row assembly in
//! [`crate::rows`].

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use fresco_core::params::Schedule;
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;
use uuid::fmt::Hyphenated;

use crate::error::Result;
use crate::records::{AttemptError, WorkerError};
use crate::rows::{Columns, undecodable};

/// How every UUID is bound: hyphenated lowercase TEXT (a bare [`Uuid`]
/// would be bound as a BLOB and match nothing).
pub(super) fn id_text(id: Uuid) -> Hyphenated {
    id.hyphenated()
}

/// Now, in the milliseconds the timestamp columns hold.
pub(super) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `now` plus a lease, in milliseconds (saturating: a lease of centuries is
/// a lease that never ends).
pub(super) fn plus(now: i64, lease: Duration) -> i64 {
    now.saturating_add(millis(lease))
}

/// A duration in milliseconds (saturating).
pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn time_from_ms(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| undecodable(format!("timestamp {ms} ms is out of range")))
}

/// The `at` of an [`AttemptError`] as the JSON in `errors` holds it:
/// RFC 3339 in UTC, which serde reads back as a `DateTime<Utc>`.
pub(super) fn json_time(ms: i64) -> Result<String> {
    Ok(time_from_ms(ms)?.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// A list as the JSON TEXT a worker's model columns hold.
pub(super) fn json_list(values: &[String]) -> Result<String> {
    serde_json::to_string(values).map_err(undecodable)
}

/// A set of ids as the JSON array `json_each` reads.
pub(super) fn id_array(ids: impl Iterator<Item = Uuid>) -> Result<String> {
    let ids: Vec<String> = ids.map(|id| id_text(id).to_string()).collect();
    serde_json::to_string(&ids).map_err(undecodable)
}

fn from_json<T: DeserializeOwned>(row: &SqliteRow, column: &str) -> Result<T> {
    serde_json::from_str(&row.try_get::<String, _>(column)?).map_err(undecodable)
}

impl Columns for SqliteRow {
    fn uuid(&self, column: &str) -> Result<Uuid> {
        Ok(self.try_get::<Hyphenated, _>(column)?.into_uuid())
    }

    fn optional_uuid(&self, column: &str) -> Result<Option<Uuid>> {
        Ok(self
            .try_get::<Option<Hyphenated>, _>(column)?
            .map(Hyphenated::into_uuid))
    }

    fn text(&self, column: &str) -> Result<String> {
        Ok(self.try_get(column)?)
    }

    fn small(&self, column: &str) -> Result<u32> {
        Ok(self.try_get::<i64, _>(column)? as u32)
    }

    fn int32(&self, column: &str) -> Result<i32> {
        Ok(self.try_get(column)?)
    }

    fn int64(&self, column: &str) -> Result<i64> {
        Ok(self.try_get(column)?)
    }

    fn optional_int64(&self, column: &str) -> Result<Option<i64>> {
        Ok(self.try_get(column)?)
    }

    fn real(&self, column: &str) -> Result<f32> {
        Ok(self.try_get(column)?)
    }

    fn flag(&self, column: &str) -> Result<bool> {
        Ok(self.try_get(column)?)
    }

    fn time(&self, column: &str) -> Result<DateTime<Utc>> {
        time_from_ms(self.try_get(column)?)
    }

    fn optional_time(&self, column: &str) -> Result<Option<DateTime<Utc>>> {
        self.try_get::<Option<i64>, _>(column)?
            .map(time_from_ms)
            .transpose()
    }

    fn names(&self, column: &str) -> Result<Vec<String>> {
        from_json(self, column)
    }

    fn uuids(&self, column: &str) -> Result<Vec<Uuid>> {
        self.names(column)?
            .iter()
            .map(|id| id.parse().map_err(undecodable))
            .collect()
    }

    fn attempt_errors(&self, column: &str) -> Result<Vec<AttemptError>> {
        from_json(self, column)
    }

    fn worker_errors(&self, column: &str) -> Result<Vec<WorkerError>> {
        from_json(self, column)
    }

    fn schedule(&self, column: &str) -> Result<Schedule> {
        Schedule::from_json(&self.text(column)?).map_err(undecodable)
    }

    fn json(&self, column: &str) -> Result<serde_json::Value> {
        from_json(self, column)
    }
    fn optional_text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.try_get(column)?)
    }

    fn bytes(&self, column: &str) -> Result<Vec<u8>> {
        Ok(self.try_get(column)?)
    }
}
