//! `fresco download` that resumes, names files by a layout and mirrors a
//! job a little at a time, on a real farm with S3 (moto): an interrupted
//! download fetches only the rest; a file already there with its recorded
//! SHA-256 is kept as it is, one that differs is fetched again; a layout
//! that would give two images one name is refused before anything is
//! written; `--since` keeps the images of tasks finished at or after a time,
//! as Postgres recorded it.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use fresco_e2e::{Farm, FarmOptions, describe};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

/// object_store's own S3 client for the farm's bucket (from the `AWS_*`
/// variables), not fresco's code.
fn bucket(farm: &Farm) -> AmazonS3 {
    AmazonS3Builder::from_env()
        .with_bucket_name(&farm.services.bucket)
        .build()
        .expect("an S3 client from the AWS_* variables")
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One recorded image: its task and image index, key and SHA-256, read
/// from Postgres.
#[derive(Debug, Clone)]
struct Recorded {
    task: i32,
    image: i32,
    key: String,
    sha256: String,
}

async fn recorded(farm: &Farm, job: &str) -> Vec<Recorded> {
    let pool = farm.db.pool().await;
    let rows: Vec<(i32, i32, String, String)> = sqlx::query_as(
        "SELECT t.idx, o.idx, o.key, o.sha256 FROM outputs o JOIN tasks t ON t.id = o.task_id \
         WHERE t.job_id = $1::uuid ORDER BY t.idx, o.idx",
    )
    .bind(job)
    .fetch_all(&pool)
    .await
    .expect("the job's outputs");
    rows.into_iter()
        .map(|(task, image, key, sha256)| Recorded {
            task,
            image,
            key,
            sha256,
        })
        .collect()
}

fn file_name(r: &Recorded) -> String {
    format!("task-{:05}-{}.png", r.task, r.image)
}

/// The files under `dir` (relative, sorted), `.part` files included.
fn files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(at) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&at) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).expect("under dir");
                found.push(relative.display().to_string());
            }
        }
    }
    found.sort();
    found
}

async fn farm_with_a_job() -> (Farm, String) {
    let farm = Farm::start(FarmOptions {
        workers: 1,
        ..FarmOptions::default()
    })
    .await;
    let job = farm.submit(&[
        "--model",
        "tiny-random-dit",
        "--prompt",
        "a red circle",
        "--prompt",
        "a blue square",
        "--prompt",
        "a green triangle",
        "-n",
        "4",
        "--steps",
        "2",
        "--width",
        "32",
        "--height",
        "32",
    ]);
    let status = farm.wait_finished(&job, Duration::from_secs(120)).await;
    assert_eq!(status["counts"]["succeeded"], 3, "{status}");
    (farm, job)
}

fn download(farm: &Farm, job: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let out = out.display().to_string();
    let mut args = vec!["download", job, "--out", &out];
    args.extend_from_slice(extra);
    farm.cli(&args)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_download_resumes_fetching_only_the_rest() {
    let (farm, job) = farm_with_a_job().await;
    let images = recorded(&farm, &job).await;
    assert_eq!(images.len(), 12);
    let s3 = bucket(&farm);
    for image in &images {
        let bytes = s3
            .get(&ObjectPath::from(image.key.as_str()))
            .await
            .expect("the object")
            .bytes()
            .await
            .expect("its bytes");
        assert_eq!(
            hex(&bytes),
            image.sha256,
            "{}: the recorded SHA-256",
            image.key
        );
    }

    // The last task's objects vanish: one at a time, the download stops
    // there, with the first two tasks' images written and nothing partial.
    let (kept, lost) = images.split_at(8);
    let mut saved = BTreeMap::new();
    for image in lost {
        let path = ObjectPath::from(image.key.as_str());
        let bytes = s3
            .get(&path)
            .await
            .expect("object")
            .bytes()
            .await
            .expect("bytes");
        saved.insert(image.key.clone(), bytes);
        s3.delete(&path).await.expect("deleting the object");
    }
    let out = farm.dir.path().join("mirror");
    let interrupted = download(&farm, &job, &out, &["--jobs", "1"]);
    assert_eq!(
        interrupted.status.code(),
        Some(1),
        "{}",
        describe(&interrupted)
    );
    let said = String::from_utf8_lossy(&interrupted.stderr);
    assert!(
        said.contains(&lost[0].key),
        "the error names the missing object: {said}"
    );
    let written: Vec<String> = kept.iter().map(file_name).collect();
    assert_eq!(
        files(&out),
        written,
        "the interrupted download wrote the first 8"
    );

    // The objects are back; one written file is damaged (same size).
    for (key, bytes) in saved {
        s3.put(
            &ObjectPath::from(key.as_str()),
            PutPayload::from_bytes(bytes),
        )
        .await
        .expect("restoring the object");
    }
    let damaged = out.join(file_name(&kept[3]));
    let mut bytes = std::fs::read(&damaged).expect("a written file");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&damaged, bytes).expect("damaging the file");
    let before: BTreeMap<String, (u64, i64)> = kept
        .iter()
        .map(|image| {
            let meta = std::fs::metadata(out.join(file_name(image))).expect("metadata");
            (file_name(image), (meta.ino(), meta.mtime_nsec()))
        })
        .collect();

    let resumed = download(&farm, &job, &out, &["--jobs", "3"]);
    assert!(resumed.status.success(), "{}", describe(&resumed));
    let said = String::from_utf8_lossy(&resumed.stderr);
    assert!(
        said.contains("downloaded 5 images") && said.contains("skipped 7 already there"),
        "{said}"
    );
    for image in &images {
        let name = file_name(image);
        let bytes = std::fs::read(out.join(&name)).expect("every image is there");
        assert_eq!(hex(&bytes), image.sha256, "{name}");
        let meta = std::fs::metadata(out.join(&name)).expect("metadata");
        let kept_as_is = before.get(&name) == Some(&(meta.ino(), meta.mtime_nsec()));
        let expect_kept = kept.iter().any(|k| file_name(k) == name) && name != file_name(&kept[3]);
        assert_eq!(
            kept_as_is, expect_kept,
            "{name}: kept as it was, or fetched again"
        );
    }
    assert_eq!(files(&out).len(), 12, "nothing else, no .part left");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_layout_names_the_files_and_since_keeps_what_finished_after_a_time() {
    let (farm, job) = farm_with_a_job().await;
    let images = recorded(&farm, &job).await;

    // Two images under one name: refused, nothing written.
    let out = farm.dir.path().join("by-prompt");
    let clash = download(&farm, &job, &out, &["--layout", "{prompt_slug}.png"]);
    assert_eq!(clash.status.code(), Some(2), "{}", describe(&clash));
    assert!(
        String::from_utf8_lossy(&clash.stderr).contains("the same file"),
        "{}",
        describe(&clash)
    );
    assert!(files(&out).is_empty(), "nothing written");
    let unknown = download(&farm, &job, &out, &["--layout", "{colour}.png"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", describe(&unknown));

    let laid_out = download(&farm, &job, &out, &["--layout", "{prompt_slug}/{seed}.png"]);
    assert!(laid_out.status.success(), "{}", describe(&laid_out));
    let pool = farm.db.pool().await;
    let seeds: Vec<(String, i64)> = sqlx::query_as(
        "SELECT t.prompt, o.seed FROM outputs o JOIN tasks t ON t.id = o.task_id \
         WHERE t.job_id = $1::uuid",
    )
    .bind(&job)
    .fetch_all(&pool)
    .await
    .expect("outputs");
    let mut expected: Vec<String> = seeds
        .iter()
        .map(|(prompt, seed)| format!("{}/{}.png", prompt.replace(' ', "-"), *seed as u64))
        .collect();
    expected.sort();
    assert_eq!(files(&out), expected);

    // --since the second task's finish, as Postgres stamped it.
    let finished: Vec<(i32, String)> = sqlx::query_as(
        "SELECT idx, to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
         FROM tasks WHERE job_id = $1::uuid ORDER BY finished_at",
    )
    .bind(&job)
    .fetch_all(&pool)
    .await
    .expect("finish times");
    let (_, since) = &finished[1];
    let later: Vec<i32> = finished[1..].iter().map(|(idx, _)| *idx).collect();
    let mirror = farm.dir.path().join("since");
    let partial = download(&farm, &job, &mirror, &["--since", since]);
    assert!(partial.status.success(), "{}", describe(&partial));
    let mut want: Vec<String> = images
        .iter()
        .filter(|image| later.contains(&image.task))
        .map(file_name)
        .collect();
    want.sort();
    assert_eq!(
        files(&mirror),
        want,
        "the images of tasks finished at or after {since}"
    );
}
