//! Refusing at submit what no worker can run, on a coordinator over SQLite
//! and in-process queues: the built-in models' table, the capabilities
//! workers report when they register (the union of them admitted, the most
//! recently registered named in a refusal), and models with none known
//! admitted as before. A refused submission stores and queues nothing.

mod common;

use common::{TestCoordinator, refused};
use fresco_coordinator::Settings;
use fresco_core::ModelCapabilities;
use fresco_core::capabilities::Family;
use fresco_proto::v1 as pb;
use fresco_proto::v1::job_service_server::JobService;
use fresco_proto::v1::worker_service_server::WorkerService;
use fresco_store::JobFilter;
use tonic::{Code, Request, Status};

/// One task of `model` (empty: the default model) with `edit` applied.
fn one_task(model: &str, edit: impl FnOnce(&mut pb::TaskParams)) -> pb::SubmitJobRequest {
    let mut task = pb::TaskParams {
        prompt: Some("a red circle".into()),
        steps: Some(4),
        ..Default::default()
    };
    edit(&mut task);
    pb::SubmitJobRequest {
        model: model.into(),
        tasks: vec![task],
        ..Default::default()
    }
}

/// Registers a worker serving `models` that reports `capabilities`.
async fn register_with(
    farm: &TestCoordinator,
    models: &[&str],
    capabilities: &[ModelCapabilities],
) -> Result<String, Status> {
    farm.workers
        .register_worker(Request::new(pb::RegisterWorkerRequest {
            name: "w".into(),
            device: "cpu".into(),
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            capabilities: capabilities
                .iter()
                .map(ModelCapabilities::to_proto)
                .collect(),
            ..Default::default()
        }))
        .await
        .map(|r| r.into_inner().worker_id)
}

/// Capabilities of the Stable Diffusion folder `acme/sd` up to `max_side`.
fn sd(max_side: u32) -> ModelCapabilities {
    ModelCapabilities::of_family(
        "acme/sd",
        Family::StableDiffusion,
        8,
        Some(max_side),
        Some(4),
    )
}

/// Asserts that nothing was stored or queued, read back through the store
/// and the dispatch queues.
async fn nothing_stored(farm: &TestCoordinator, model: &str) {
    let jobs = farm
        .app
        .store
        .list_jobs(10, &JobFilter::default())
        .await
        .expect("list jobs");
    assert!(jobs.is_empty(), "nothing is stored: {jobs:?}");
    assert_eq!(farm.queued_ids(model).await, 0, "nothing is queued");
}

#[tokio::test]
async fn the_default_model_refuses_sides_and_samplers_it_cannot_draw() {
    let farm = TestCoordinator::start(Settings::default()).await;
    let oversize = one_task("", |t| {
        t.width = Some(512);
        t.height = Some(512);
    });
    let message = refused(farm.submit(oversize).await, Code::InvalidArgument);
    assert_eq!(
        message,
        "tasks[0].width: fresco-shapes draws at most 64 (got 512)"
    );

    let ddim = one_task("", |t| t.sampler = Some("ddim".into()));
    let message = refused(farm.submit(ddim).await, Code::InvalidArgument);
    assert_eq!(
        message,
        "tasks[0].sampler: fresco-shapes runs euler, heun (got ddim)"
    );

    let eta = one_task("tiny-random-dit", |t| {
        t.schedule = Some(pb::Schedule {
            eta: Some(0.5),
            ..Default::default()
        });
    });
    let message = refused(farm.submit(eta).await, Code::InvalidArgument);
    assert_eq!(
        message,
        "tasks[0].schedule: tiny-random-dit is a flow-matching model and reads only \
         flow_shift of the schedule knobs (got eta)"
    );
    nothing_stored(&farm, "fresco-shapes").await;
    nothing_stored(&farm, "tiny-random-dit").await;
}

#[tokio::test]
async fn a_job_default_beyond_the_model_names_the_first_task_it_reaches() {
    let farm = TestCoordinator::start(Settings::default()).await;
    let mut request = one_task("", |_| {});
    request.tasks.push(pb::TaskParams {
        prompt: Some("a blue square".into()),
        height: Some(128),
        ..Default::default()
    });
    let message = refused(farm.submit(request.clone()).await, Code::InvalidArgument);
    assert_eq!(
        message,
        "tasks[1].height: fresco-shapes draws at most 64 (got 128)"
    );

    request.tasks[1].height = None;
    request.defaults = Some(pb::TaskParams {
        width: Some(72),
        ..Default::default()
    });
    let message = refused(farm.submit(request).await, Code::InvalidArgument);
    assert_eq!(
        message,
        "tasks[0].width: fresco-shapes draws at most 64 (got 72)"
    );
    nothing_stored(&farm, "fresco-shapes").await;
}

#[tokio::test]
async fn within_the_builtin_limits_a_job_is_stored_as_before() {
    let farm = TestCoordinator::start(Settings::default()).await;
    let job = farm
        .submit(one_task("", |t| {
            t.width = Some(64);
            t.sampler = Some("heun".into());
        }))
        .await
        .expect("SubmitJob");
    assert_eq!(farm.stored_tasks(&job.id).await.len(), 1);
    assert_eq!(farm.queued_ids("fresco-shapes").await, 1);
}

#[tokio::test]
async fn a_folder_models_worker_capabilities_are_enforced() {
    let farm = TestCoordinator::start(Settings::default()).await;
    // A worker that reports nothing: the model is admitted as before.
    register_with(&farm, &["acme/sd"], &[])
        .await
        .expect("register");
    let big = |side: u32| {
        one_task("acme/sd", |t| {
            t.width = Some(side);
            t.sampler = Some("ddim".into());
        })
    };
    let job = farm.submit(big(1024)).await.expect("no capabilities known");
    assert_eq!(farm.stored_tasks(&job.id).await.len(), 1);

    register_with(&farm, &["acme/sd"], &[sd(512)])
        .await
        .expect("register");
    let message = refused(farm.submit(big(1024)).await, Code::InvalidArgument);
    assert_eq!(
        message,
        "tasks[0].width: acme/sd draws at most 512 (got 1024)"
    );
    let message = refused(
        farm.submit(one_task("acme/sd", |t| t.n = Some(5))).await,
        Code::InvalidArgument,
    );
    assert_eq!(
        message,
        "tasks[0].n: acme/sd renders at most 4 images per task (got 5)"
    );
    let message = refused(
        farm.submit(one_task("acme/sd", |t| {
            t.sampler = Some("flow_euler".into())
        }))
        .await,
        Code::InvalidArgument,
    );
    assert!(
        message.starts_with("tasks[0].sampler: acme/sd runs ddim, ddpm, euler"),
        "{message}"
    );

    let within = farm.submit(big(512)).await.expect("within the limits");
    let jobs = farm
        .app
        .store
        .list_jobs(10, &JobFilter::default())
        .await
        .expect("list jobs");
    let ids: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
    assert_eq!(
        ids,
        [within.id, job.id],
        "only the admitted jobs are stored"
    );
    assert_eq!(farm.queued_ids("acme/sd").await, 2);
}

#[tokio::test]
async fn two_workers_admit_the_union_and_the_newest_names_the_rule() {
    let farm = TestCoordinator::start(Settings::default()).await;
    register_with(&farm, &["acme/sd"], &[sd(1024)])
        .await
        .expect("register");
    register_with(&farm, &["acme/sd"], &[sd(256)])
        .await
        .expect("register");
    let sized = |side: u32| one_task("acme/sd", |t| t.height = Some(side));
    farm.submit(sized(256)).await.expect("both admit it");
    farm.submit(sized(1024))
        .await
        .expect("the first worker admits it");
    let message = refused(farm.submit(sized(2048)).await, Code::InvalidArgument);
    assert_eq!(
        message,
        "tasks[0].height: acme/sd draws at most 256 (got 2048)"
    );
    assert_eq!(farm.queued_ids("acme/sd").await, 2);
}

#[tokio::test]
async fn a_flux_folder_refuses_a_negative_prompt() {
    let farm = TestCoordinator::start(Settings::default()).await;
    let flux = ModelCapabilities::of_family("acme/flux", Family::Flux, 16, None, Some(64));
    register_with(&farm, &["acme/flux"], &[flux])
        .await
        .expect("register");
    let request = one_task("acme/flux", |t| {
        t.sampler = Some("flow_euler".into());
        t.negative_prompt = Some("blurry".into());
    });
    let message = refused(farm.submit(request).await, Code::InvalidArgument);
    assert_eq!(
        message,
        "tasks[0].negative_prompt: acme/flux ignores negative prompts (got \"blurry\")"
    );
    nothing_stored(&farm, "acme/flux").await;
}

#[tokio::test]
async fn a_model_known_only_by_name_is_admitted_as_before() {
    let settings = Settings {
        extra_models: vec!["acme/remote".into()],
        ..Settings::default()
    };
    let farm = TestCoordinator::start(settings).await;
    let request = one_task("acme/remote", |t| {
        t.width = Some(2048);
        t.sampler = Some("unipc".into());
    });
    let job = farm.submit(request).await.expect("no capabilities known");
    assert_eq!(farm.queued_ids("acme/remote").await, 1, "{job:?}");
}

#[tokio::test]
async fn registered_capabilities_are_listed_and_checked() {
    let farm = TestCoordinator::start(Settings::default()).await;
    let id = register_with(&farm, &["acme/sd", "tiny-random-dit"], &[sd(512)])
        .await
        .expect("register");
    let listed = farm
        .jobs
        .list_workers(Request::new(pb::ListWorkersRequest::default()))
        .await
        .expect("ListWorkers")
        .into_inner()
        .workers;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].capabilities, [sd(512).to_proto()]);

    let mut bad = sd(512).to_proto();
    bad.family = "unet".into();
    let message = refused(
        farm.workers
            .register_worker(Request::new(pb::RegisterWorkerRequest {
                models: vec!["acme/sd".into()],
                capabilities: vec![bad],
                ..Default::default()
            }))
            .await,
        Code::InvalidArgument,
    );
    assert!(message.starts_with("capabilities[0].family: "), "{message}");

    let message = refused(
        register_with(&farm, &["tiny-random-dit"], &[sd(512)]).await,
        Code::InvalidArgument,
    );
    assert_eq!(
        message,
        "capabilities[0].model: must be one of the worker's models (got \"acme/sd\")"
    );
    let message = refused(
        register_with(&farm, &["acme/sd"], &[sd(512), sd(1024)]).await,
        Code::InvalidArgument,
    );
    assert_eq!(
        message,
        "capabilities[1].model: must be reported once (got \"acme/sd\" again)"
    );
    let workers = farm.app.store.list_workers(10).await.expect("list workers");
    assert_eq!(workers.len(), 1, "a refused registration stores nothing");
}
