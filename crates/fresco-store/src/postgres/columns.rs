//! How the Postgres store reads a fetched column: its native types (UUID,
//! INT, BIGINT, TIMESTAMPTZ, TEXT[], UUID[], JSONB), for the row assembly
//! in [`crate::rows`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use fresco_core::params::Schedule;
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::error::{Result, StoreError};
use crate::records::{AttemptError, WorkerError};
use crate::rows::Columns;

/// A duration as the seconds `make_interval(secs => ..)` takes.
pub(super) fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn from_jsonb<T: DeserializeOwned>(row: &PgRow, column: &str) -> Result<T> {
    let value: serde_json::Value = row.try_get(column)?;
    serde_json::from_value(value)
        .map_err(|e| StoreError::Internal(sqlx::Error::Decode(Box::new(e))))
}

impl Columns for PgRow {
    fn uuid(&self, column: &str) -> Result<Uuid> {
        Ok(self.try_get(column)?)
    }

    fn optional_uuid(&self, column: &str) -> Result<Option<Uuid>> {
        Ok(self.try_get(column)?)
    }

    fn text(&self, column: &str) -> Result<String> {
        Ok(self.try_get(column)?)
    }

    fn small(&self, column: &str) -> Result<u32> {
        Ok(self.try_get::<i32, _>(column)? as u32)
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
        Ok(self.try_get(column)?)
    }

    fn optional_time(&self, column: &str) -> Result<Option<DateTime<Utc>>> {
        Ok(self.try_get(column)?)
    }

    fn names(&self, column: &str) -> Result<Vec<String>> {
        Ok(self.try_get(column)?)
    }

    fn uuids(&self, column: &str) -> Result<Vec<Uuid>> {
        Ok(self.try_get(column)?)
    }

    fn attempt_errors(&self, column: &str) -> Result<Vec<AttemptError>> {
        from_jsonb(self, column)
    }

    fn worker_errors(&self, column: &str) -> Result<Vec<WorkerError>> {
        from_jsonb(self, column)
    }

    fn schedule(&self, column: &str) -> Result<Schedule> {
        from_jsonb(self, column)
    }

    fn json(&self, column: &str) -> Result<serde_json::Value> {
        Ok(self.try_get(column)?)
    }
    fn optional_text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.try_get(column)?)
    }

    fn bytes(&self, column: &str) -> Result<Vec<u8>> {
        Ok(self.try_get(column)?)
    }
}
