//! `fresco regen`: renders one image again by submitting exactly the
//! parameters that made it, as a job of one task with one image whose seed
//! is the image's own seed (image k of a task with seed s is sampled from
//! seed s + k alone), so the new image is pixel-identical on the same
//! device and dtype.
//!
//! The image is named by its PNG (the text chunks every fresco image
//! carries say what made it) or by `JOB TASK IMAGE` (the coordinator's
//! record of the task; TASK is its index in the job or its id).

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use fresco_core::params::image_seed;
use fresco_core::png_text::read_png_text;
use fresco_core::schedule::Schedule;
use fresco_proto::v1 as pb;

use crate::Failure;
use crate::args::RegenArgs;
use crate::client::{self, Client, Target};
use crate::commands::submit::{Delivery, send};

/// What made one image: its model, its parameters (one image, the image's
/// own seed), and where they were read.
#[derive(Debug, Clone, PartialEq)]
struct Made {
    model: String,
    params: pb::TaskParams,
    origin: String,
}

pub async fn run(target: &Target, args: RegenArgs) -> Result<(), Failure> {
    let made = match args.image.as_slice() {
        [file] => from_png(Path::new(file))?,
        [job, task, image] => {
            let mut client = client::connect(target).await?;
            from_record(&mut client, job, task, image).await?
        }
        _ => {
            return Err(Failure::Invalid(
                "regen takes an image: FILE.png, or JOB TASK IMAGE".into(),
            ));
        }
    };
    eprintln!(
        "rendering again {} with seed {}",
        made.origin,
        made.params.seed.unwrap_or_default()
    );
    let request = pb::SubmitJobRequest {
        model: made.model,
        tasks: vec![made.params],
        priority: args.priority,
        name: format!("regen of {}", made.origin),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    let delivery = Delivery {
        json: args.json,
        wait: args.wait,
        patience: Duration::from_secs(args.retry_seconds),
    };
    send(target, request, &delivery).await
}

/// The parameters a fresco PNG's text chunks name.
fn from_png(path: &Path) -> Result<Made, Failure> {
    let invalid = |why: String| Failure::Invalid(format!("{}: {why}", path.display()));
    let bytes = std::fs::read(path).map_err(|err| invalid(err.to_string()))?;
    let (_, _, text) = read_png_text(&bytes).map_err(|err| invalid(err.to_string()))?;
    let chunks: HashMap<String, String> = text.into_iter().collect();
    let chunk = |key: &str| {
        chunks.get(key).cloned().ok_or_else(|| {
            invalid(format!(
                "no `{key}` text chunk: not an image fresco made (or its metadata was stripped)"
            ))
        })
    };
    let schedule = Schedule::from_json(&chunk("schedule")?)
        .map_err(|err| invalid(format!("`schedule` text chunk: {err}")))?;
    let params = pb::TaskParams {
        prompt: Some(chunk("prompt")?),
        negative_prompt: Some(chunk("negative_prompt")?),
        seed: Some(parse(&chunk("seed")?, "seed").map_err(invalid)?),
        steps: Some(parse(&chunk("steps")?, "steps").map_err(invalid)?),
        width: Some(parse(&chunk("width")?, "width").map_err(invalid)?),
        height: Some(parse(&chunk("height")?, "height").map_err(invalid)?),
        guidance: Some(parse(&chunk("guidance")?, "guidance").map_err(invalid)?),
        n: Some(1),
        sampler: Some(chunk("sampler")?),
        schedule: schedule.to_proto(),
    };
    Ok(Made {
        model: chunk("model")?,
        params,
        origin: path.display().to_string(),
    })
}

fn parse<T: FromStr>(text: &str, key: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("`{key}` text chunk {text:?} is not a valid {key}"))
}

/// The parameters the coordinator recorded for image `image` of task
/// `task` (its index in the job, or its id) of job `job`.
async fn from_record(
    client: &mut Client,
    job: &str,
    task: &str,
    image: &str,
) -> Result<Made, Failure> {
    let image: u32 = image
        .parse()
        .map_err(|_| Failure::Invalid(format!("IMAGE {image:?} is not an image index")))?;
    let task = find_task(client, job, task).await?;
    if image >= task.n {
        return Err(Failure::Invalid(format!(
            "task {} of job {job} has {} images (0 to {}); there is no image {image}",
            task.index,
            task.n,
            task.n.saturating_sub(1)
        )));
    }
    let seed = task
        .outputs
        .iter()
        .find(|output| output.index == image)
        .map_or_else(|| image_seed(task.seed, u64::from(image)), |o| o.seed);
    Ok(Made {
        model: task.model.clone(),
        origin: format!("image {image} of task {} of job {job}", task.index),
        params: params_of(&task, seed),
    })
}

/// Task `task` of `job`: by index when it is a number, else by id.
async fn find_task(client: &mut Client, job: &str, task: &str) -> Result<pb::Task, Failure> {
    let found = match task.parse::<u32>() {
        Ok(index) => client
            .list_tasks(pb::ListTasksRequest {
                job_id: job.to_owned(),
                from_index: index,
                limit: 1,
                ..Default::default()
            })
            .await?
            .into_inner()
            .tasks
            .into_iter()
            .find(|t| t.index == index),
        Err(_) => Some(
            client
                .get_task(pb::GetTaskRequest {
                    task_id: task.to_owned(),
                })
                .await?
                .into_inner(),
        )
        .filter(|t| t.job_id == job),
    };
    found.ok_or_else(|| Failure::Invalid(format!("job {job} has no task {task}")))
}

/// `task`'s parameters with one image, seeded `seed`.
fn params_of(task: &pb::Task, seed: u64) -> pb::TaskParams {
    pb::TaskParams {
        prompt: Some(task.prompt.clone()),
        negative_prompt: Some(task.negative_prompt.clone()),
        seed: Some(seed),
        steps: Some(task.steps),
        width: Some(task.width),
        height: Some(task.height),
        guidance: Some(task.guidance),
        n: Some(1),
        sampler: Some(task.sampler.clone()),
        schedule: task.schedule.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_fresco_chunks_is_refused_naming_the_chunk() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("plain.png");
        let mut bytes = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut bytes, 1, 1);
            encoder.set_color(png::ColorType::Rgb);
            let mut writer = encoder.write_header().expect("header");
            writer.write_image_data(&[0, 0, 0]).expect("data");
        }
        std::fs::write(&path, bytes).expect("write");
        match from_png(&path) {
            Err(Failure::Invalid(message)) => {
                assert!(message.contains("no `schedule` text chunk"), "{message}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_file_is_refused_naming_it() {
        match from_png(Path::new("/nonexistent/x.png")) {
            Err(Failure::Invalid(message)) => assert!(message.starts_with("/nonexistent/x.png: ")),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
