//! `OutputUrls` on a coordinator over SQLite: presigned GET URLs for a
//! job's recorded outputs when its storage is S3, only for a caller who may
//! see the job; `FAILED_PRECONDITION` on `file://` storage, whose outputs
//! stream through `ReadOutput`.
//!
//! The S3 tests sign with the credentials of the `AWS_*` variables the
//! services script writes (signing makes no request); without
//! `FRESCO_TEST_BUCKET` they are skipped, saying so.

mod common;

use std::collections::HashMap;

use common::{TestCoordinator, job_request, refused, time};
use fresco_coordinator::Settings;
use fresco_core::{Caller, Role};
use fresco_proto::v1 as pb;
use fresco_proto::v1::job_service_server::JobService;
use tonic::{Code, Request, Status};

/// A coordinator whose outputs go to a prefix of its own in the test
/// bucket; `None` when no S3 server is configured.
async fn on_s3() -> Option<TestCoordinator> {
    let Ok(bucket) = std::env::var("FRESCO_TEST_BUCKET") else {
        eprintln!("skipped: FRESCO_TEST_BUCKET is not set (run with scripts/test.sh)");
        return None;
    };
    let url = format!("s3://{bucket}/coordinator-{:016x}", rand::random::<u64>());
    Some(TestCoordinator::start_with_storage(Settings::default(), Some(&url)).await)
}

/// Submits a job of `tasks` tasks of `n` images and completes every task;
/// returns the job and its tasks.
async fn finished(farm: &TestCoordinator, tasks: usize, n: u32) -> (pb::Job, Vec<pb::Task>) {
    let job = farm
        .submit(job_request(tasks, n, 0))
        .await
        .expect("SubmitJob");
    let worker = farm.register("w1", &job.model).await;
    for _ in 0..tasks {
        let claim = farm.take(&worker, &job.model).await;
        let task = claim.task.expect("a claimed task");
        farm.complete(&worker, &task, claim.attempt)
            .await
            .expect("CompleteTask");
    }
    let tasks = farm.tasks(&job.id).await;
    (job, tasks)
}

async fn output_urls(
    farm: &TestCoordinator,
    caller: Option<Caller>,
    request: pb::OutputUrlsRequest,
) -> Result<pb::OutputUrlsResponse, Status> {
    let mut request = Request::new(request);
    if let Some(caller) = caller {
        request.extensions_mut().insert(caller);
    }
    farm.jobs
        .output_urls(request)
        .await
        .map(tonic::Response::into_inner)
}

fn for_job(job: &pb::Job) -> pb::OutputUrlsRequest {
    pb::OutputUrlsRequest {
        job_id: job.id.clone(),
        ..Default::default()
    }
}

fn client(tenant: &str, role: Role) -> Option<Caller> {
    Some(Caller::Client {
        key_id: Some(format!("{tenant}-{role}")),
        tenant: tenant.to_owned(),
        role,
    })
}

/// The query parameters of a URL.
fn query(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn file_storage_refuses_to_sign_and_points_at_read_output() {
    let farm = TestCoordinator::start(Settings::default()).await;
    let (job, _) = finished(&farm, 2, 1).await;
    let message = refused(
        output_urls(&farm, None, for_job(&job)).await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        message,
        "this farm's output storage cannot sign URLs (file://); read the outputs through ReadOutput"
    );
}

#[tokio::test]
async fn a_bad_request_names_its_field_and_rule() {
    let farm = TestCoordinator::start(Settings::default()).await;
    let (job, _) = finished(&farm, 2, 1).await;
    let too_long = pb::OutputUrlsRequest {
        expires_seconds: 3601,
        ..for_job(&job)
    };
    assert_eq!(
        refused(
            output_urls(&farm, None, too_long).await,
            Code::InvalidArgument
        ),
        "expires_seconds: must be between 1 and 3600 (0: 300) (got 3601)"
    );
    let bad_id = pb::OutputUrlsRequest {
        job_id: "not-a-job".into(),
        ..Default::default()
    };
    let message = refused(
        output_urls(&farm, None, bad_id).await,
        Code::InvalidArgument,
    );
    assert!(message.starts_with("job_id: "), "{message}");
    let too_many = pb::OutputUrlsRequest {
        keys: (0..10_001).map(|i| format!("k{i}")).collect(),
        ..for_job(&job)
    };
    assert_eq!(
        refused(
            output_urls(&farm, None, too_many).await,
            Code::InvalidArgument
        ),
        "keys: must name at most 10000 keys (got 10001)"
    );
}

#[tokio::test]
async fn s3_storage_signs_a_short_lived_url_for_every_recorded_output() {
    let Some(farm) = on_s3().await else { return };
    let (job, tasks) = finished(&farm, 3, 2).await;
    let recorded: Vec<(String, u64)> = tasks
        .iter()
        .flat_map(|t| t.outputs.iter().map(|o| (o.key.clone(), o.bytes)))
        .collect();
    assert_eq!(recorded.len(), 6, "three tasks of two images each");

    let before = chrono::Utc::now();
    let answer = output_urls(&farm, None, for_job(&job))
        .await
        .expect("OutputUrls");
    let after = chrono::Utc::now();
    let answered: Vec<(String, u64)> = answer
        .urls
        .iter()
        .map(|u| (u.key.clone(), u.bytes))
        .collect();
    assert_eq!(answered, recorded, "every recorded output, in task order");
    let expires_at = time(answer.expires_at);
    let default = chrono::Duration::seconds(300);
    assert!(before + default <= expires_at + chrono::Duration::milliseconds(1));
    assert!(expires_at <= after + default);

    let endpoint = url::Url::parse(&std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL"))
        .expect("an endpoint URL");
    let prefix = farm
        .app
        .storage
        .url()
        .trim_start_matches("s3://")
        .to_owned();
    for signed in &answer.urls {
        let url = url::Url::parse(&signed.url).expect("a URL");
        assert_eq!(url.host_str(), endpoint.host_str(), "{url}");
        assert_eq!(url.port(), endpoint.port(), "{url}");
        let bucket = prefix.split('/').next().expect("a bucket");
        assert_eq!(
            url.path(),
            format!("/{bucket}/{}", signed.key),
            "the URL names the object itself"
        );
        let query = query(&url);
        assert_eq!(query["X-Amz-Expires"], "300");
        assert_eq!(query["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert!(query.contains_key("X-Amz-Signature"), "{url}");
    }

    let some = pb::OutputUrlsRequest {
        keys: vec![recorded[5].0.clone(), recorded[0].0.clone()],
        expires_seconds: 60,
        ..for_job(&job)
    };
    let answer = output_urls(&farm, None, some).await.expect("OutputUrls");
    let keys: Vec<&str> = answer.urls.iter().map(|u| u.key.as_str()).collect();
    assert_eq!(keys, [recorded[0].0.as_str(), recorded[5].0.as_str()]);
    for signed in &answer.urls {
        let url = url::Url::parse(&signed.url).expect("a URL");
        assert_eq!(query(&url)["X-Amz-Expires"], "60");
    }
}

#[tokio::test]
async fn a_key_must_be_a_recorded_output_of_that_job() {
    let Some(farm) = on_s3().await else { return };
    let (job, tasks) = finished(&farm, 2, 1).await;
    let (other, other_tasks) = finished(&farm, 2, 1).await;
    let theirs = other_tasks[0].outputs[0].key.clone();
    let ours = tasks[0].outputs[0].key.clone();
    for key in [theirs.clone(), "nothing/0.png".to_owned()] {
        let request = pb::OutputUrlsRequest {
            keys: vec![ours.clone(), key.clone()],
            ..for_job(&job)
        };
        assert_eq!(
            refused(output_urls(&farm, None, request).await, Code::NotFound),
            format!("output {key:?} not found")
        );
    }
    let request = pb::OutputUrlsRequest {
        keys: vec![theirs],
        ..for_job(&other)
    };
    let answer = output_urls(&farm, None, request).await.expect("OutputUrls");
    assert_eq!(answer.urls.len(), 1);
}

#[tokio::test]
async fn another_tenants_job_answers_as_a_missing_one() {
    let Some(farm) = on_s3().await else { return };
    let (job, _) = finished(&farm, 2, 1).await;
    assert_eq!(job.tenant, "default");
    let missing = pb::OutputUrlsRequest {
        job_id: fresco_core::JobId::new().to_string(),
        ..Default::default()
    };
    let missing_message = refused(
        output_urls(&farm, client("default", Role::Viewer), missing.clone()).await,
        Code::NotFound,
    );
    assert_eq!(missing_message, format!("job {} not found", missing.job_id));

    for caller in [
        client("acme", Role::Viewer),
        client("acme", Role::Submitter),
    ] {
        let message = refused(
            output_urls(&farm, caller, for_job(&job)).await,
            Code::NotFound,
        );
        assert_eq!(
            message,
            format!("job {} not found", job.id),
            "as for a job that does not exist"
        );
    }
    for caller in [client("default", Role::Viewer), client("acme", Role::Admin)] {
        let answer = output_urls(&farm, caller, for_job(&job))
            .await
            .expect("OutputUrls of a job the caller may see");
        assert_eq!(answer.urls.len(), 2);
    }
    let worker = Some(Caller::Worker { key_id: None });
    let message = refused(
        output_urls(&farm, worker, for_job(&job)).await,
        Code::PermissionDenied,
    );
    assert_eq!(
        message,
        "OutputUrls needs a client key; a worker token opens only the worker API"
    );
}
