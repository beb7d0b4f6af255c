//! Storing a submission in SQLite: the job row and all its tasks in one
//! write transaction, as multi-row INSERTs in chunks that stay under
//! SQLite's limit of 32,766 bound parameters per statement.

use fresco_core::{JobId, JobSpec, TaskId};
use sqlx::AssertSqlSafe;

use super::SqliteStore;
use super::rows::{queued_from_row, text};
use crate::error::Result;
use crate::records::QueuedTask;

/// Parameters of one task row.
const PER_ROW: usize = 17;
/// Rows per INSERT: 1,900 × 17 = 32,300 parameters.
const INSERT_CHUNK: usize = 1_900;
const _: () = assert!(INSERT_CHUNK * PER_ROW <= 32_766);

/// `INSERT INTO tasks ... VALUES (...), (...) RETURNING ...` for `rows`
/// rows. The parameters are anonymous `?`s: SQLite and sqlx look numbered
/// ones up by a linear scan each, which is quadratic at this size.
fn insert_sql(rows: usize) -> String {
    let row = format!("({})", ["?"; PER_ROW].join(", "));
    let mut sql = String::with_capacity(200 + rows * (row.len() + 2));
    sql.push_str(
        "INSERT INTO tasks (id, job_id, idx, model, priority, max_attempts, created_at, prompt,
             negative_prompt, seed, steps, width, height, guidance, n, sampler, schedule) VALUES ",
    );
    for n in 0..rows {
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&row);
    }
    sql.push_str(" RETURNING id, model, priority, seq");
    sql
}

impl SqliteStore {
    /// Inserts the job and its tasks; returns the tasks in dispatch order.
    pub(super) async fn insert_submission(
        &self,
        job: JobId,
        spec: &JobSpec,
        now: i64,
    ) -> Result<Vec<QueuedTask>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO jobs (id, name, owner, model, priority, max_attempts, task_count,
                 created_at, request_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .bind(text(job.0))
        .bind(&spec.name)
        .bind(&spec.owner)
        .bind(&spec.model)
        .bind(spec.priority)
        .bind(i64::from(spec.max_attempts))
        .bind(spec.tasks.len() as i64)
        .bind(now)
        .bind(spec.request_id.as_deref())
        .execute(&mut *tx)
        .await?;

        let mut queued = Vec::with_capacity(spec.tasks.len());
        for (chunk_no, chunk) in spec.tasks.chunks(INSERT_CHUNK).enumerate() {
            let first = chunk_no * INSERT_CHUNK;
            // Full chunks share one cached statement; the last one is a
            // one-off.
            let mut query = sqlx::query(AssertSqlSafe(insert_sql(chunk.len())))
                .persistent(chunk.len() == INSERT_CHUNK);
            for (offset, task) in chunk.iter().enumerate() {
                query = query
                    .bind(text(TaskId::new().0))
                    .bind(text(job.0))
                    .bind((first + offset) as i64)
                    .bind(&spec.model)
                    .bind(spec.priority)
                    .bind(i64::from(spec.max_attempts))
                    .bind(now)
                    .bind(&task.prompt)
                    .bind(&task.negative_prompt)
                    .bind(task.seed as i64)
                    .bind(i64::from(task.steps))
                    .bind(i64::from(task.width))
                    .bind(i64::from(task.height))
                    .bind(task.guidance)
                    .bind(i64::from(task.n))
                    .bind(&task.sampler)
                    .bind(task.schedule.to_json());
            }
            for row in query.fetch_all(&mut *tx).await? {
                queued.push(queued_from_row(&row)?);
            }
        }
        tx.commit().await?;
        queued.sort_by_key(|t| t.seq);
        Ok(queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_binds_one_parameter_per_column() {
        let sql = insert_sql(3);
        let open = sql.find('(').expect("a column list");
        let close = sql.find(')').expect("a column list");
        assert_eq!(sql[open..close].split(',').count(), PER_ROW);
        let values = &sql[sql.find("VALUES").expect("VALUES")..];
        assert_eq!(values.matches('?').count(), 3 * PER_ROW);
    }
}
