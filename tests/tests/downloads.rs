//! `fresco download` on a real farm with S3 (moto): the coordinator signs
//! presigned GET URLs (`OutputUrls`) and the images come straight from the
//! bucket, the coordinator out of the data path; the files are the bucket's
//! objects byte for byte.
//!
//! What this S3 server cannot show: moto's S3 server does not check a
//! presigned URL's signature or expiry (nor, in its IAM mode, accept one at
//! all), so an expired or edited URL being refused is S3's promise, not
//! tested here. `fresco dev` downloads (file://, streamed through the
//! coordinator) are tested in tests/dev.rs.

use std::collections::BTreeMap;
use std::time::Duration;

use fresco_e2e::{Farm, FarmOptions, describe};

/// Every recorded output of the job by the file `fresco download` names it.
fn recorded(status: &serde_json::Value) -> BTreeMap<String, (String, u64)> {
    let mut files = BTreeMap::new();
    for task in status["tasks"].as_array().expect("tasks") {
        let index = task["index"].as_u64().expect("a task index");
        for output in task["outputs"].as_array().expect("outputs") {
            let image = output["index"].as_u64().expect("an image index");
            files.insert(
                format!("task-{index:05}-{image}.png"),
                (
                    output["key"].as_str().expect("a key").to_owned(),
                    output["bytes"].as_u64().expect("a size"),
                ),
            );
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn fresco_download_fetches_every_output_straight_from_the_bucket() {
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
        "3",
        "--steps",
        "2",
        "--width",
        "32",
        "--height",
        "32",
    ]);
    let status = farm.wait_finished(&job, Duration::from_secs(120)).await;
    assert_eq!(
        status["counts"]["succeeded"],
        3,
        "{status}\n{}",
        farm.logs()
    );
    let recorded = recorded(&status);
    assert_eq!(recorded.len(), 9, "three tasks of three images");

    let out = farm.dir.path().join("downloaded");
    let download = farm.cli(&["download", &job, "--out", out.to_str().expect("utf-8")]);
    assert!(download.status.success(), "{}", describe(&download));
    let said = String::from_utf8_lossy(&download.stderr);
    let total: u64 = recorded.values().map(|(_, bytes)| bytes).sum();
    assert!(
        said.contains(&format!(
            "downloaded 9 images ({total} bytes) into {} straight from the object store",
            out.display()
        )),
        "{said}"
    );

    // The coordinator signed URLs and streamed nothing.
    let log = farm.log("coordinator");
    assert!(log.contains("output URLs signed"), "{}", farm.logs());
    assert!(
        !log.contains("output streamed through the coordinator"),
        "no image went through the coordinator\n{}",
        farm.logs()
    );

    // Every file, and nothing else, byte for byte the bucket's object.
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .expect("the download directory")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .into_string()
                .expect("utf-8")
        })
        .collect();
    files.sort();
    assert_eq!(
        files,
        recorded.keys().cloned().collect::<Vec<_>>(),
        "one file per recorded output, no partial file left"
    );
    let in_bucket = farm.bucket_keys().await;
    for (file, (key, bytes)) in &recorded {
        assert!(in_bucket.contains(key), "{key} is in the bucket");
        let downloaded = std::fs::read(out.join(file)).expect("a downloaded file");
        assert_eq!(downloaded.len() as u64, *bytes, "{file}: the recorded size");
        assert!(
            downloaded == farm.bucket_object(key).await,
            "{file} is the bucket's {key} byte for byte"
        );
    }
}

/// `OutputUrls` for another tenant's job answers NOT_FOUND, as for a job
/// that does not exist (and in-process in
/// crates/fresco-coordinator/tests/downloads.rs).
mod tenancy {
    use fresco_e2e::{Farm, FarmOptions};
    use fresco_proto::v1 as pb;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread")]
    async fn output_urls_of_another_tenants_job_are_not_found() {
        let farm = Farm::start(FarmOptions {
            workers: 1,
            ..FarmOptions::default()
        })
        .await;
        let ours = farm.client_key("ours", "submitter");
        let theirs = farm.client_key("theirs", "viewer");
        let submitted = farm.cli_as(
            &ours,
            &[
                "submit",
                "--model",
                "tiny-random-dit",
                "--prompt",
                "a red circle",
                "--steps",
                "2",
                "--width",
                "32",
                "--height",
                "32",
            ],
        );
        assert!(
            submitted.status.success(),
            "{}",
            fresco_e2e::describe(&submitted)
        );
        let job = String::from_utf8_lossy(&submitted.stdout).trim().to_owned();
        farm.wait_finished(&job, Duration::from_secs(120)).await;

        let request = pb::OutputUrlsRequest {
            job_id: job.clone(),
            ..Default::default()
        };
        let own = farm
            .job_client_as(&ours)
            .await
            .output_urls(request.clone())
            .await
            .expect("OutputUrls of the caller's own job")
            .into_inner();
        assert_eq!(own.urls.len(), 1);
        let refused = farm
            .job_client_as(&theirs)
            .await
            .output_urls(request)
            .await
            .expect_err("another tenant's job");
        assert_eq!(refused.code(), tonic::Code::NotFound);
        assert_eq!(refused.message(), format!("job {job} not found"));
    }
}
