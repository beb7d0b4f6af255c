//! The sweeper deletes output objects of attempts that ended without
//! recording them, a lease after they ended, and keeps recorded outputs and
//! the objects of attempts still running; read back by walking the
//! `file://` output directory, not through the storage layer.

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use common::{TestCoordinator, job_request, output_key, wait_past};
use fresco_coordinator::Settings;
use fresco_coordinator::sweeper::{Swept, sweep_once};
use fresco_core::{JobId, TaskId};
use fresco_proto::v1 as pb;
use fresco_store::Backoff;

/// Every file under `dir`, as keys relative to it, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let key = path.strip_prefix(root).expect("under the root");
                out.push(key.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Uploads image `index` of `task`'s attempt, as a worker does.
async fn upload(farm: &TestCoordinator, task: &pb::Task, attempt: u32, index: u32) -> String {
    let key = key_of(task, attempt, index);
    farm.app
        .storage
        .put(&key, Bytes::from_static(b"png"))
        .await
        .expect("upload");
    key
}

fn key_of(task: &pb::Task, attempt: u32, index: u32) -> String {
    let job: JobId = task.job_id.parse().expect("a job id");
    let id: TaskId = task.id.parse().expect("a task id");
    output_key(job, id, attempt, index)
}

#[tokio::test]
async fn stray_objects_of_ended_attempts_go_and_recorded_or_running_ones_stay() {
    let lease = Duration::from_millis(300);
    let farm = TestCoordinator::start(Settings {
        lease,
        retry_backoff: Backoff::NONE,
        ..Settings::default()
    })
    .await;
    let job = farm.submit(job_request(3, 2, 3)).await.expect("SubmitJob");
    let zombie = farm.register("zombie", &job.model).await;
    let good = farm.register("good", &job.model).await;

    // Task A: the first attempt uploads one image and fails; the second
    // uploads both and completes. Task B completes at its first attempt.
    // Task C: the first attempt uploads and fails; the second runs on.
    let a1 = farm.take(&zombie, &job.model).await;
    let b1 = farm.take(&good, &job.model).await;
    let c1 = farm.take(&zombie, &job.model).await;
    let (a, b, c) = (
        a1.task.clone().expect("task a"),
        b1.task.clone().expect("task b"),
        c1.task.clone().expect("task c"),
    );
    let stray_a = upload(&farm, &a, a1.attempt, 0).await;
    farm.fail(&zombie, &a.id, a1.attempt, "device lost", false)
        .await
        .expect("FailTask");
    upload(&farm, &b, b1.attempt, 0).await;
    upload(&farm, &b, b1.attempt, 1).await;
    farm.complete(&good, &b, b1.attempt)
        .await
        .expect("complete b");
    let stray_c = upload(&farm, &c, c1.attempt, 1).await;
    farm.fail(&zombie, &c.id, c1.attempt, "device lost", false)
        .await
        .expect("FailTask");
    // A file beside the output keys is not the sweeper's to delete.
    let notes = format!("{}/{}/notes.txt", a.job_id, a.id);
    farm.app
        .storage
        .put(&notes, Bytes::from_static(b"hello"))
        .await
        .expect("put");
    let a2 = farm.take(&good, &job.model).await;
    assert_eq!(a2.task.as_ref().map(|t| t.id.as_str()), Some(a.id.as_str()));
    upload(&farm, &a, a2.attempt, 0).await;
    upload(&farm, &a, a2.attempt, 1).await;
    farm.complete(&good, &a, a2.attempt)
        .await
        .expect("complete a");
    let c2 = farm.take(&good, &job.model).await;
    assert_eq!(c2.task.as_ref().map(|t| t.id.as_str()), Some(c.id.as_str()));
    let running_c = upload(&farm, &c, c2.attempt, 0).await;
    let ended = Utc::now();

    let before = files(&farm.outputs_dir());
    assert!(before.contains(&stray_a) && before.contains(&stray_c));
    assert_eq!(
        sweep_once(&farm.app).await.expect("sweep"),
        Swept::default(),
        "within a lease of the end, a late upload may still come"
    );

    wait_past(ended + lease).await;
    let swept = sweep_once(&farm.app).await.expect("sweep");
    assert_eq!(
        swept,
        Swept {
            tasks: 2,
            deleted: 2
        },
        "tasks a and c; b completed at its first attempt and is never listed"
    );
    let mut expected: Vec<String> = [
        key_of(&a, a2.attempt, 0),
        key_of(&a, a2.attempt, 1),
        key_of(&b, b1.attempt, 0),
        key_of(&b, b1.attempt, 1),
        running_c,
        notes,
    ]
    .into();
    expected.sort();
    assert_eq!(files(&farm.outputs_dir()), expected);
    for task in [&a, &b] {
        let recorded: Vec<String> = farm
            .get_task(&task.id)
            .await
            .outputs
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert!(
            recorded.iter().all(|k| expected.contains(k)),
            "{recorded:?}"
        );
    }
    assert_eq!(
        sweep_once(&farm.app).await.expect("sweep"),
        Swept::default(),
        "swept once"
    );
}
