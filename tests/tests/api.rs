//! Bad input through the real coordinator and CLI: a precise error naming
//! the field and the rule, and nothing stored.

use fresco_e2e::{Farm, FarmOptions, describe};
use fresco_proto::v1 as pb;
use fresco_proto::v1::job_service_client::JobServiceClient;

fn task(prompt: &str) -> pb::TaskParams {
    pb::TaskParams {
        prompt: Some(prompt.into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_name_the_field_and_store_nothing() {
    let farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    let mut client = JobServiceClient::connect(farm.endpoint.clone())
        .await
        .expect("connect");
    let ok = pb::SubmitJobRequest {
        model: "tiny-random-dit".into(),
        tasks: vec![task("fine")],
        ..Default::default()
    };
    let with_task = |t: pb::TaskParams| pb::SubmitJobRequest {
        tasks: vec![task("fine"), t],
        ..ok.clone()
    };
    let cases: Vec<(&str, pb::SubmitJobRequest, &str)> = vec![
        (
            "empty prompt",
            with_task(task("")),
            "tasks[1].prompt: must not be empty",
        ),
        (
            "1 MB prompt",
            with_task(task(&"x".repeat(1 << 20))),
            "tasks[1].prompt: must be at most 2000",
        ),
        (
            "zero steps",
            with_task(pb::TaskParams {
                steps: Some(0),
                ..task("a")
            }),
            "tasks[1].steps: must be between 1 and 200",
        ),
        (
            "too many steps",
            with_task(pb::TaskParams {
                steps: Some(10_000),
                ..task("a")
            }),
            "tasks[1].steps",
        ),
        (
            "zero n",
            with_task(pb::TaskParams {
                n: Some(0),
                ..task("a")
            }),
            "tasks[1].n: must be between 1 and 16",
        ),
        (
            "odd width",
            with_task(pb::TaskParams {
                width: Some(33),
                ..task("a")
            }),
            "tasks[1].width: must be a positive multiple of 8",
        ),
        (
            "huge height",
            with_task(pb::TaskParams {
                height: Some(1 << 20),
                ..task("a")
            }),
            "tasks[1].height: must be at most 2048",
        ),
        (
            "NaN guidance",
            with_task(pb::TaskParams {
                guidance: Some(f32::NAN),
                ..task("a")
            }),
            "tasks[1].guidance: must be finite",
        ),
        (
            "negative guidance",
            with_task(pb::TaskParams {
                guidance: Some(-2.0),
                ..task("a")
            }),
            "tasks[1].guidance: must be between 0",
        ),
        (
            "unknown sampler",
            with_task(pb::TaskParams {
                sampler: Some("warp".into()),
                ..task("a")
            }),
            "tasks[1].sampler: unknown sampler",
        ),
        (
            "unknown model",
            pb::SubmitJobRequest {
                model: "sd-99".into(),
                ..ok.clone()
            },
            "model: unknown model",
        ),
        (
            "no tasks",
            pb::SubmitJobRequest {
                tasks: vec![],
                ..ok.clone()
            },
            "tasks: must hold at least one task",
        ),
        (
            "bad default",
            pb::SubmitJobRequest {
                defaults: Some(pb::TaskParams {
                    steps: Some(0),
                    ..Default::default()
                }),
                ..ok.clone()
            },
            "defaults.steps",
        ),
    ];
    for (what, request, expected) in cases {
        let status = client.submit_job(request).await.expect_err(what);
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{what}: {status:?}"
        );
        assert!(
            status.message().contains(expected),
            "{what}: {:?} should contain {expected:?}",
            status.message()
        );
    }
    for (what, status) in [
        (
            "bad job id",
            client
                .get_job(pb::GetJobRequest {
                    job_id: "nope".into(),
                })
                .await
                .expect_err("get"),
        ),
        (
            "unknown state",
            client
                .list_tasks(pb::ListTasksRequest {
                    job_id: uuid::Uuid::new_v4().to_string(),
                    state: 99,
                    ..Default::default()
                })
                .await
                .expect_err("list"),
        ),
    ] {
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{what}: {status:?}"
        );
    }
    let missing = client
        .get_job(pb::GetJobRequest {
            job_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect_err("missing");
    assert_eq!(missing.code(), tonic::Code::NotFound);

    let pool = farm.db.pool().await;
    let stored: i64 =
        sqlx::query_scalar("SELECT (SELECT count(*) FROM jobs) + (SELECT count(*) FROM tasks)")
            .fetch_one(&pool)
            .await
            .expect("counting rows");
    assert_eq!(stored, 0, "a rejected submission stores nothing");

    // The CLI names the bad line of a prompts file and exits non-zero.
    let file = farm.dir.path().join("bad.jsonl");
    std::fs::write(
        &file,
        "{\"prompt\": \"a\"}\n{\"prompt\": \"b\", \"steps\": \"many\"}\n",
    )
    .expect("write");
    let out = farm.cli(&[
        "submit",
        "--model",
        "tiny-random-dit",
        "--prompts-file",
        file.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.jsonl:2:"),
        "{}",
        describe(&out)
    );
    // ... and a server-side rule with the field's name.
    let out = farm.cli(&[
        "submit",
        "--model",
        "tiny-random-dit",
        "--prompt",
        "a",
        "--steps",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("defaults.steps"),
        "{}",
        describe(&out)
    );
}
