//! A job's manifest: one [`ManifestRow`] per image (what made it, where it
//! is, its hash), and one per task that made none, with the task's error
//! history. The coordinator builds the rows (its `manifest` module) and
//! sends them over `JobManifest`; this module is the row itself, shared by
//! everything that writes one: its JSON Lines form ([`ManifestRow::jsonl`],
//! the bucket's `manifest.jsonl` and `fresco manifest --format jsonl`), its
//! columns for tabular formats ([`ManifestRow::cells`], CSV and Parquet),
//! and (with `grpc`) its wire form.
//!
//! A new column is a field here, its entry in [`ManifestRow::cells`], and
//! its proto field in `ManifestRow` with the two conversions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::params::Schedule;
use crate::sweep::Coordinates;

/// One row of a job's manifest. Image fields (`image_index`, `seed`, `key`,
/// `bytes`, `sha256`) are `None` on the row of a task that made no image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManifestRow {
    pub job_id: String,
    pub job_name: String,
    pub task_id: String,
    pub task_index: u32,
    /// queued, running, succeeded, failed or cancelled.
    pub state: String,
    pub image_index: Option<u32>,
    /// The task's place in its job's sweep: the index of its value along
    /// each axis the sweep varies (absent: an axis not varied, or a job
    /// that is not a sweep).
    pub sweep_prompt: Option<u32>,
    pub sweep_seed: Option<u32>,
    pub sweep_guidance: Option<u32>,
    pub sweep_steps: Option<u32>,
    pub sweep_sampler: Option<u32>,
    pub sweep_size: Option<u32>,
    pub prompt: String,
    pub negative_prompt: String,
    /// The task's seed; image `k` was made from `task_seed + k`.
    pub task_seed: u64,
    /// The seed that makes this image alone (`n = 1`).
    pub seed: Option<u64>,
    pub steps: u32,
    pub width: u32,
    pub height: u32,
    pub guidance: f32,
    pub n: u32,
    pub sampler: String,
    // The schedule knobs, each unset one keeping the model's own value.
    pub num_train_timesteps: Option<u32>,
    pub beta_start: Option<f64>,
    pub beta_end: Option<f64>,
    pub beta_schedule: Option<String>,
    pub prediction_type: Option<String>,
    pub timestep_spacing: Option<String>,
    pub karras_sigmas: Option<bool>,
    pub flow_shift: Option<f64>,
    pub eta: Option<f64>,
    pub model: String,
    /// Lower-case hex SHA-256 of the model weights that made the image.
    pub weights_sha256: Option<String>,
    pub key: Option<String>,
    pub bytes: Option<u64>,
    /// Lower-case hex SHA-256 of the image's bytes.
    pub sha256: Option<String>,
    pub worker_id: Option<String>,
    pub worker_name: Option<String>,
    pub worker_device: Option<String>,
    pub attempt: u32,
    pub queued_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Device time of the attempt that made the image.
    pub sampling_seconds: Option<f64>,
    /// Every failed attempt of the task, oldest first.
    pub errors: Vec<ManifestError>,
}

/// One failed attempt of a row's task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManifestError {
    pub attempt: u32,
    pub worker: String,
    /// request, worker, lease or deadline.
    pub kind: String,
    pub message: String,
    pub at: Option<DateTime<Utc>>,
}

/// One value of a row's column, typed even when absent, so a table's
/// schema comes from any row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(Option<String>),
    Unsigned(Option<u64>),
    Float(Option<f32>),
    Double(Option<f64>),
    Flag(Option<bool>),
    Time(Option<DateTime<Utc>>),
}

/// A named column value of a row.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub name: &'static str,
    pub value: Value,
}

fn cell(name: &'static str, value: Value) -> Cell {
    Cell { name, value }
}

fn text(value: &str) -> Value {
    Value::Text(Some(value.to_owned()))
}

fn unsigned(value: impl Into<u64>) -> Value {
    Value::Unsigned(Some(value.into()))
}

fn index(value: Option<u32>) -> Value {
    Value::Unsigned(value.map(u64::from))
}

impl ManifestRow {
    /// The row as one line of JSON Lines (no newline): the form of the
    /// bucket's `manifest.jsonl` and of `fresco manifest --format jsonl`.
    pub fn jsonl(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }

    /// The task's sweep coordinates into the row's columns.
    pub fn set_coordinates(&mut self, at: &Coordinates) {
        self.sweep_prompt = at.prompt;
        self.sweep_seed = at.seed;
        self.sweep_guidance = at.guidance;
        self.sweep_steps = at.steps;
        self.sweep_sampler = at.sampler;
        self.sweep_size = at.size;
    }

    /// The row's sweep coordinates (`None` when it has none).
    pub fn coordinates(&self) -> Option<Coordinates> {
        let at = Coordinates {
            prompt: self.sweep_prompt,
            seed: self.sweep_seed,
            guidance: self.sweep_guidance,
            steps: self.sweep_steps,
            sampler: self.sweep_sampler,
            size: self.sweep_size,
        };
        (at != Coordinates::default()).then_some(at)
    }

    /// The task's schedule knobs into the row's columns.
    pub fn set_schedule(&mut self, schedule: &Schedule) {
        self.num_train_timesteps = schedule.num_train_timesteps;
        self.beta_start = schedule.beta_start;
        self.beta_end = schedule.beta_end;
        self.beta_schedule = schedule.beta_schedule.clone();
        self.prediction_type = schedule.prediction_type.clone();
        self.timestep_spacing = schedule.timestep_spacing.clone();
        self.karras_sigmas = schedule.karras_sigmas;
        self.flow_shift = schedule.flow_shift;
        self.eta = schedule.eta;
    }

    /// The row's schedule knobs.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            num_train_timesteps: self.num_train_timesteps,
            beta_start: self.beta_start,
            beta_end: self.beta_end,
            beta_schedule: self.beta_schedule.clone(),
            prediction_type: self.prediction_type.clone(),
            timestep_spacing: self.timestep_spacing.clone(),
            karras_sigmas: self.karras_sigmas,
            flow_shift: self.flow_shift,
            eta: self.eta,
        }
    }

    /// The row as columns, in the order of its JSON fields and under the
    /// same names, for tabular formats; `errors` is its JSON array as text.
    pub fn cells(&self) -> Vec<Cell> {
        let errors = serde_json::to_string(&self.errors).unwrap_or_else(|_| "[]".into());
        vec![
            cell("job_id", text(&self.job_id)),
            cell("job_name", text(&self.job_name)),
            cell("task_id", text(&self.task_id)),
            cell("task_index", unsigned(self.task_index)),
            cell("state", text(&self.state)),
            cell(
                "image_index",
                Value::Unsigned(self.image_index.map(u64::from)),
            ),
            cell("sweep_prompt", index(self.sweep_prompt)),
            cell("sweep_seed", index(self.sweep_seed)),
            cell("sweep_guidance", index(self.sweep_guidance)),
            cell("sweep_steps", index(self.sweep_steps)),
            cell("sweep_sampler", index(self.sweep_sampler)),
            cell("sweep_size", index(self.sweep_size)),
            cell("prompt", text(&self.prompt)),
            cell("negative_prompt", text(&self.negative_prompt)),
            cell("task_seed", unsigned(self.task_seed)),
            cell("seed", Value::Unsigned(self.seed)),
            cell("steps", unsigned(self.steps)),
            cell("width", unsigned(self.width)),
            cell("height", unsigned(self.height)),
            cell("guidance", Value::Float(Some(self.guidance))),
            cell("n", unsigned(self.n)),
            cell("sampler", text(&self.sampler)),
            cell(
                "num_train_timesteps",
                Value::Unsigned(self.num_train_timesteps.map(u64::from)),
            ),
            cell("beta_start", Value::Double(self.beta_start)),
            cell("beta_end", Value::Double(self.beta_end)),
            cell("beta_schedule", Value::Text(self.beta_schedule.clone())),
            cell("prediction_type", Value::Text(self.prediction_type.clone())),
            cell(
                "timestep_spacing",
                Value::Text(self.timestep_spacing.clone()),
            ),
            cell("karras_sigmas", Value::Flag(self.karras_sigmas)),
            cell("flow_shift", Value::Double(self.flow_shift)),
            cell("eta", Value::Double(self.eta)),
            cell("model", text(&self.model)),
            cell("weights_sha256", Value::Text(self.weights_sha256.clone())),
            cell("key", Value::Text(self.key.clone())),
            cell("bytes", Value::Unsigned(self.bytes)),
            cell("sha256", Value::Text(self.sha256.clone())),
            cell("worker_id", Value::Text(self.worker_id.clone())),
            cell("worker_name", Value::Text(self.worker_name.clone())),
            cell("worker_device", Value::Text(self.worker_device.clone())),
            cell("attempt", unsigned(self.attempt)),
            cell("queued_at", Value::Time(self.queued_at)),
            cell("started_at", Value::Time(self.started_at)),
            cell("finished_at", Value::Time(self.finished_at)),
            cell("sampling_seconds", Value::Double(self.sampling_seconds)),
            cell("errors", Value::Text(Some(errors))),
        ]
    }
}

#[cfg(feature = "grpc")]
mod wire {
    use chrono::{DateTime, Utc};
    use fresco_proto::v1 as pb;

    use super::{ManifestError, ManifestRow};
    use crate::params::Schedule;
    use crate::sweep::Coordinates;

    fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
        prost_types::Timestamp {
            seconds: at.timestamp(),
            nanos: at.timestamp_subsec_nanos() as i32,
        }
    }

    fn time(at: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
        at.and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
    }

    /// An empty string as absent.
    fn given(text: &str) -> Option<String> {
        (!text.is_empty()).then(|| text.to_owned())
    }

    impl ManifestError {
        pub fn to_proto(&self) -> pb::TaskError {
            pb::TaskError {
                attempt: self.attempt,
                worker: self.worker.clone(),
                message: self.message.clone(),
                at: self.at.map(timestamp),
                kind: self.kind.clone(),
                task_id: String::new(),
            }
        }

        pub fn from_proto(p: &pb::TaskError) -> Self {
            Self {
                attempt: p.attempt,
                worker: p.worker.clone(),
                kind: p.kind.clone(),
                message: p.message.clone(),
                at: time(p.at.as_ref()),
            }
        }
    }

    impl ManifestRow {
        pub fn to_proto(&self) -> pb::ManifestRow {
            pb::ManifestRow {
                job_id: self.job_id.clone(),
                job_name: self.job_name.clone(),
                task_id: self.task_id.clone(),
                task_index: self.task_index,
                state: self.state.clone(),
                image_index: self.image_index,
                prompt: self.prompt.clone(),
                negative_prompt: self.negative_prompt.clone(),
                task_seed: self.task_seed,
                seed: self.seed,
                steps: self.steps,
                width: self.width,
                height: self.height,
                guidance: self.guidance,
                n: self.n,
                sampler: self.sampler.clone(),
                schedule: self.schedule().to_proto(),
                coordinates: self.coordinates().as_ref().map(Coordinates::to_proto),
                model: self.model.clone(),
                weights_sha256: self.weights_sha256.clone().unwrap_or_default(),
                key: self.key.clone().unwrap_or_default(),
                bytes: self.bytes,
                sha256: self.sha256.clone().unwrap_or_default(),
                worker_id: self.worker_id.clone().unwrap_or_default(),
                worker_name: self.worker_name.clone().unwrap_or_default(),
                worker_device: self.worker_device.clone().unwrap_or_default(),
                attempt: self.attempt,
                queued_at: self.queued_at.map(timestamp),
                started_at: self.started_at.map(timestamp),
                finished_at: self.finished_at.map(timestamp),
                sampling_seconds: self.sampling_seconds,
                errors: self.errors.iter().map(ManifestError::to_proto).collect(),
            }
        }

        pub fn from_proto(p: &pb::ManifestRow) -> Self {
            let mut row = Self {
                job_id: p.job_id.clone(),
                job_name: p.job_name.clone(),
                task_id: p.task_id.clone(),
                task_index: p.task_index,
                state: p.state.clone(),
                image_index: p.image_index,
                prompt: p.prompt.clone(),
                negative_prompt: p.negative_prompt.clone(),
                task_seed: p.task_seed,
                seed: p.seed,
                steps: p.steps,
                width: p.width,
                height: p.height,
                guidance: p.guidance,
                n: p.n,
                sampler: p.sampler.clone(),
                model: p.model.clone(),
                weights_sha256: given(&p.weights_sha256),
                key: given(&p.key),
                bytes: p.bytes,
                sha256: given(&p.sha256),
                worker_id: given(&p.worker_id),
                worker_name: given(&p.worker_name),
                worker_device: given(&p.worker_device),
                attempt: p.attempt,
                queued_at: time(p.queued_at.as_ref()),
                started_at: time(p.started_at.as_ref()),
                finished_at: time(p.finished_at.as_ref()),
                sampling_seconds: p.sampling_seconds,
                errors: p.errors.iter().map(ManifestError::from_proto).collect(),
                ..Self::default()
            };
            row.set_schedule(&Schedule::from_proto(p.schedule.as_ref()));
            if let Some(at) = &p.coordinates {
                row.set_coordinates(&Coordinates::from_proto(at));
            }
            row
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_row() -> ManifestRow {
        let at = DateTime::from_timestamp(1_765_000_000, 123_456_000).expect("a time");
        let mut row = ManifestRow {
            job_id: "j".into(),
            task_id: "t".into(),
            state: "succeeded".into(),
            image_index: Some(1),
            prompt: "a red circle".into(),
            task_seed: u64::MAX,
            seed: Some(0),
            steps: 2,
            width: 16,
            height: 16,
            guidance: 4.5,
            n: 2,
            sampler: "euler".into(),
            model: "fresco-shapes".into(),
            weights_sha256: Some("ab".repeat(32)),
            key: Some("p/j/t/1/1.png".into()),
            bytes: Some(123),
            sha256: Some("cd".repeat(32)),
            worker_id: Some("w".into()),
            worker_name: Some("gpu-1".into()),
            worker_device: Some("cpu".into()),
            attempt: 2,
            queued_at: Some(at),
            started_at: Some(at),
            finished_at: Some(at),
            sampling_seconds: Some(1.25),
            errors: vec![ManifestError {
                attempt: 1,
                worker: "w0".into(),
                kind: "worker".into(),
                message: "out of memory".into(),
                at: Some(at),
            }],
            ..ManifestRow::default()
        };
        row.set_schedule(&Schedule {
            eta: Some(0.5),
            beta_schedule: Some("linear".into()),
            ..Schedule::default()
        });
        row
    }

    #[test]
    fn every_json_field_is_a_column_once() {
        let row = image_row();
        let json: serde_json::Value = serde_json::from_str(&row.jsonl().expect("json")).expect("");
        let fields: Vec<&str> = json
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        let names: Vec<&str> = row.cells().iter().map(|c| c.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        let mut fields_sorted = fields.clone();
        fields_sorted.sort_unstable();
        assert_eq!(sorted, fields_sorted, "every field is a column, once");
    }

    #[test]
    fn a_row_reads_back_from_its_json_line() {
        let row = image_row();
        let back: ManifestRow = serde_json::from_str(&row.jsonl().expect("json")).expect("parse");
        assert_eq!(back, row);
        assert_eq!(back.schedule().eta, Some(0.5));
    }

    #[cfg(feature = "grpc")]
    #[test]
    fn a_row_survives_the_wire() {
        let row = image_row();
        assert_eq!(ManifestRow::from_proto(&row.to_proto()), row);
        let task_row = ManifestRow {
            image_index: None,
            seed: None,
            key: None,
            bytes: None,
            sha256: None,
            weights_sha256: None,
            sampling_seconds: None,
            state: "failed".into(),
            ..image_row()
        };
        assert_eq!(ManifestRow::from_proto(&task_row.to_proto()), task_row);
    }
}
