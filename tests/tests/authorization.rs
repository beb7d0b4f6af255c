//! Who may do what, on a real farm (coordinator, a worker, Postgres, Redis,
//! S3) that asks for keys: two tenants, each with its own jobs, and one
//! table of hostile calls. Each call must get its exact gRPC code and
//! message, and leave Postgres (every row of every table), Redis (every
//! key) and the bucket exactly as they were:
//! - no key, a malformed one, an unknown one, a wrong secret, a revoked key:
//!   UNAUTHENTICATED, saying which;
//! - a worker token on the client API, a client key on the worker API:
//!   PERMISSION_DENIED;
//! - tenant A reading, watching, cancelling, retrying, pausing, resuming,
//!   reprioritizing B's job, its tasks and its output: NOT_FOUND, worded as for an id that
//!   does not exist;
//! - a viewer submitting, cancelling or reprioritizing, a non-admin listing, releasing or
//!   draining workers or listing every tenant: PERMISSION_DENIED;
//! - a worker token acting for a worker registered with another token, or
//!   for one never registered: PERMISSION_DENIED.
//!
//! Before the table, what each tenant may do works: A lists only A's jobs,
//! an admin lists both tenants', the same request id in two tenants makes
//! two jobs, a revoked key is refused from its very next call. After it, the
//! CLI says what is wrong with a missing or refused key and exits non-zero,
//! and `fresco dev` without keys refuses to listen beyond loopback.

use std::time::Duration;

use fresco_core::CredentialKind;
use fresco_core::credentials::IssuedKey;
use fresco_e2e::{
    Farm, FarmOptions, binary, describe, free_port, job_client_at, key_id, stdout_json,
    worker_client_at,
};
use fresco_proto::v1 as pb;
use tonic::{Code, Request, Status};

const MODEL: &str = "tiny-random-dit";
const MISSING_JOB: &str = "0190f1c2-7b1e-7000-8000-000000000000";
const MISSING_TASK: &str = "0190f1c2-7b1e-7000-8000-000000000001";
const MISSING_WORKER: &str = "0190f1c2-7b1e-7000-8000-000000000002";

/// How a call presents itself.
#[derive(Clone)]
enum Cred {
    /// No authorization metadata at all.
    Nothing,
    /// `authorization: Bearer <key>`.
    Key(String),
    /// This authorization metadata, as it is.
    Raw(&'static str),
}

/// One call of either API.
enum Call {
    Submit(Box<pb::SubmitJobRequest>),
    GetJob(String),
    ListJobs { all_tenants: bool },
    CancelJob(String),
    RetryJob(String),
    PauseJob(String),
    ResumeJob(String),
    SetJobPriority(String),
    WatchJob(String),
    GetTask(String),
    ListTasks(String),
    CancelTask(String),
    ReadOutput(String),
    JobManifest(String),
    ListWorkers,
    ReleaseWorker(String),
    DrainWorker(String),
    Register(String),
    Claim { worker: String, task: String },
    Heartbeat { worker: String, task: String },
    Complete { worker: String, task: String },
    Fail { worker: String, task: String },
    Ping(String),
}

/// What the answer's message must be.
enum Says {
    Exactly(String),
    StartsWith(String),
}

fn request<T>(cred: &Cred, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Cred::Raw(value) = cred {
        request
            .metadata_mut()
            .insert("authorization", value.parse().expect("ASCII metadata"));
    }
    request
}

fn key_of(cred: &Cred) -> Option<&str> {
    match cred {
        Cred::Key(key) => Some(key),
        Cred::Nothing | Cred::Raw(_) => None,
    }
}

fn submission(prompt: &str, request_id: &str) -> pb::SubmitJobRequest {
    pb::SubmitJobRequest {
        model: MODEL.into(),
        tasks: vec![pb::TaskParams {
            prompt: Some(prompt.into()),
            steps: Some(2),
            ..Default::default()
        }],
        request_id: request_id.into(),
        ..Default::default()
    }
}

async fn send(endpoint: &str, cred: &Cred, call: Call) -> Result<(), Status> {
    let mut jobs = job_client_at(endpoint, key_of(cred)).await;
    let mut workers = worker_client_at(endpoint, key_of(cred)).await;
    match call {
        Call::Submit(s) => jobs.submit_job(request(cred, *s)).await.map(drop),
        Call::GetJob(job_id) => jobs
            .get_job(request(cred, pb::GetJobRequest { job_id }))
            .await
            .map(drop),
        Call::ListJobs { all_tenants } => jobs
            .list_jobs(request(
                cred,
                pb::ListJobsRequest {
                    all_tenants,
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Call::CancelJob(job_id) => jobs
            .cancel_job(request(cred, pb::CancelJobRequest { job_id }))
            .await
            .map(drop),
        Call::RetryJob(job_id) => jobs
            .retry_job(request(cred, pb::RetryJobRequest { job_id }))
            .await
            .map(drop),
        Call::PauseJob(job_id) => jobs
            .pause_job(request(cred, pb::PauseJobRequest { job_id }))
            .await
            .map(drop),
        Call::ResumeJob(job_id) => jobs
            .resume_job(request(cred, pb::ResumeJobRequest { job_id }))
            .await
            .map(drop),
        Call::SetJobPriority(job_id) => jobs
            .set_job_priority(request(
                cred,
                pb::SetJobPriorityRequest {
                    job_id,
                    priority: 9,
                },
            ))
            .await
            .map(drop),
        Call::WatchJob(job_id) => {
            let mut stream = jobs
                .watch_job(request(cred, pb::WatchJobRequest { job_id }))
                .await?
                .into_inner();
            stream.message().await.map(drop)
        }
        Call::GetTask(task_id) => jobs
            .get_task(request(cred, pb::GetTaskRequest { task_id }))
            .await
            .map(drop),
        Call::ListTasks(job_id) => jobs
            .list_tasks(request(
                cred,
                pb::ListTasksRequest {
                    job_id,
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Call::CancelTask(task_id) => jobs
            .cancel_task(request(cred, pb::CancelTaskRequest { task_id }))
            .await
            .map(drop),
        Call::JobManifest(job_id) => {
            let mut stream = jobs
                .job_manifest(request(cred, pb::JobManifestRequest { job_id }))
                .await?
                .into_inner();
            stream.message().await.map(drop)
        }
        Call::ReadOutput(key) => {
            let mut stream = jobs
                .read_output(request(cred, pb::ReadOutputRequest { key }))
                .await?
                .into_inner();
            stream.message().await.map(drop)
        }
        Call::ListWorkers => jobs
            .list_workers(request(cred, pb::ListWorkersRequest::default()))
            .await
            .map(drop),
        Call::ReleaseWorker(worker_id) => jobs
            .release_worker(request(cred, pb::ReleaseWorkerRequest { worker_id }))
            .await
            .map(drop),
        Call::DrainWorker(worker_id) => jobs
            .drain_worker(request(cred, pb::DrainWorkerRequest { worker_id }))
            .await
            .map(drop),
        Call::Register(worker_id) => workers
            .register_worker(request(
                cred,
                pb::RegisterWorkerRequest {
                    worker_id,
                    name: "impostor".into(),
                    device: "cpu".into(),
                    models: vec![MODEL.into()],
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Call::Claim { worker, task } => workers
            .claim_task(request(
                cred,
                pb::ClaimTaskRequest {
                    worker_id: worker,
                    task_id: task,
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Call::Heartbeat { worker, task } => workers
            .heartbeat(request(
                cred,
                pb::HeartbeatRequest {
                    worker_id: worker,
                    task_id: task,
                    attempt: 1,
                    step: 1,
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Call::Complete { worker, task } => workers
            .complete_task(request(
                cred,
                pb::CompleteTaskRequest {
                    worker_id: worker,
                    task_id: task,
                    attempt: 1,
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Call::Fail { worker, task } => workers
            .fail_task(request(
                cred,
                pb::FailTaskRequest {
                    worker_id: worker,
                    task_id: task,
                    attempt: 1,
                    message: "forged".into(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Call::Ping(worker) => workers
            .ping(request(
                cred,
                pb::PingRequest {
                    worker_id: worker,
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
    }
}

/// Submits one small job as `key` and returns its id.
fn submit_as(farm: &Farm, key: &str, prompt: &str, request_id: &str) -> String {
    let out = farm.cli_as(
        key,
        &[
            "submit",
            "--model",
            MODEL,
            "--prompt",
            prompt,
            "--steps",
            "2",
            "--request-id",
            request_id,
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn job_ids(listed: &serde_json::Value) -> Vec<String> {
    listed
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|j| j["job_id"].as_str().expect("a job id").to_owned())
        .collect()
}

/// The keys and the jobs of the two tenants.
struct World {
    a_submitter: String,
    a_viewer: String,
    a_job: String,
    b_job: String,
    b_task: String,
    b_output: String,
    /// The farm's worker, registered with the farm's worker token.
    worker: String,
    /// A worker token no worker registered with.
    other_token: String,
    revoked: String,
}

/// Two tenants' jobs, rendered; the positive checks of who sees what.
async fn world(farm: &Farm) -> World {
    let a_submitter = farm.client_key("team-a", "submitter");
    let a_viewer = farm.client_key("team-a", "viewer");
    let b_submitter = farm.client_key("team-b", "submitter");

    // The same request id in two tenants: two jobs, each its tenant's; sent
    // again in one tenant, the job it stored.
    let a_job = submit_as(farm, &a_submitter, "a red circle", "shared-id");
    let b_job = submit_as(farm, &b_submitter, "a blue square", "shared-id");
    assert_ne!(a_job, b_job, "one request id, two tenants, two jobs");
    assert_eq!(
        submit_as(farm, &a_submitter, "a red circle", "shared-id"),
        a_job,
        "sent again in its tenant, the same job"
    );
    let a_status = farm.wait_finished(&a_job, Duration::from_secs(120)).await;
    let b_status = farm.wait_finished(&b_job, Duration::from_secs(120)).await;
    assert_eq!(a_status["tenant"], "team-a", "{a_status}");
    assert_eq!(b_status["tenant"], "team-b", "{b_status}");
    assert_eq!(b_status["counts"]["succeeded"], 1, "{b_status}");
    // Their manifests are written before any snapshot is taken.
    farm.wait_manifests_written(&[&a_job, &b_job]).await;

    // A lists only A's jobs; an admin lists both with --all-tenants, and
    // its own tenant's without.
    let a_listed = stdout_json(&farm.cli_as(&a_viewer, &["list", "--json"]));
    assert_eq!(job_ids(&a_listed), vec![a_job.clone()], "{a_listed}");
    let all = stdout_json(&farm.cli(&["list", "--all-tenants", "--json"]));
    let mut all_ids = job_ids(&all);
    all_ids.sort();
    let mut both = vec![a_job.clone(), b_job.clone()];
    both.sort();
    assert_eq!(all_ids, both, "{all}");
    let admin_own = stdout_json(&farm.cli(&["list", "--json"]));
    assert_eq!(
        admin_own,
        serde_json::json!([]),
        "the default tenant has none"
    );

    // A viewer reads its tenant's images.
    let a_key = a_status["tasks"][0]["outputs"][0]["key"]
        .as_str()
        .expect("an output key")
        .to_owned();
    send(
        &farm.endpoint,
        &Cred::Key(a_viewer.clone()),
        Call::ReadOutput(a_key),
    )
    .await
    .expect("a viewer reads its own tenant's output");
    send(
        &farm.endpoint,
        &Cred::Key(a_viewer.clone()),
        Call::JobManifest(a_job.clone()),
    )
    .await
    .expect("a viewer reads its own tenant's manifest");

    // A key works until it is revoked, and not one call after.
    let revoked = farm.client_key("team-a", "admin");
    send(
        &farm.endpoint,
        &Cred::Key(revoked.clone()),
        Call::GetJob(a_job.clone()),
    )
    .await
    .expect("a key before its revocation");
    farm.revoke_key(&revoked);
    let refused = send(
        &farm.endpoint,
        &Cred::Key(revoked.clone()),
        Call::GetJob(a_job.clone()),
    )
    .await
    .expect_err("the call right after the revocation");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    let worker = {
        let workers = stdout_json(&farm.cli(&["workers", "--json"]));
        workers[0]["worker_id"]
            .as_str()
            .unwrap_or_else(|| panic!("a worker id in {workers}"))
            .to_owned()
    };
    World {
        b_task: b_status["tasks"][0]["task_id"]
            .as_str()
            .expect("a task id")
            .to_owned(),
        b_output: b_status["tasks"][0]["outputs"][0]["key"]
            .as_str()
            .expect("an output key")
            .to_owned(),
        a_submitter,
        a_viewer,
        a_job,
        b_job,
        worker,
        other_token: farm.new_worker_token(),
        revoked,
    }
}

fn cases(farm: &Farm, w: &World) -> Vec<(&'static str, Cred, Call, Code, Says)> {
    use Call::*;
    use Says::*;
    let unauthenticated = Code::Unauthenticated;
    let denied = Code::PermissionDenied;
    let missing = Code::NotFound;
    let admin = Cred::Key(farm.admin_key.clone());
    let a = Cred::Key(w.a_submitter.clone());
    let viewer = Cred::Key(w.a_viewer.clone());
    let token = Cred::Key(farm.worker_token.clone());
    let other_token = Cred::Key(w.other_token.clone());
    let unknown = IssuedKey::generate(CredentialKind::Client)
        .expect("a key")
        .key;
    let mut wrong_secret = w.a_submitter.clone();
    let last = if wrong_secret.ends_with('A') {
        "B"
    } else {
        "A"
    };
    wrong_secret.replace_range(wrong_secret.len() - 1.., last);
    let job_missing = |id: &str| Exactly(format!("job {id} not found"));
    let task_missing = |id: &str| Exactly(format!("task {id} not found"));
    let as_worker = |what: &str| {
        Exactly(format!(
            "{what} needs a client key; a worker token opens only the worker API"
        ))
    };
    let as_client = |what: &str| {
        Exactly(format!(
            "{what} needs a worker token; a client key opens only the client API"
        ))
    };
    let not_bound = |id: &str| {
        Exactly(format!(
            "worker {id} is not registered with this worker token"
        ))
    };
    let forged = |worker: &str| (worker.to_owned(), w.b_task.clone());
    vec![
        // Authentication.
        (
            "no key",
            Cred::Nothing,
            GetJob(w.a_job.clone()),
            unauthenticated,
            Exactly("no API key: send the metadata `authorization: Bearer <key>`".into()),
        ),
        (
            "no key on the worker API",
            Cred::Nothing,
            Claim {
                worker: w.worker.clone(),
                task: w.b_task.clone(),
            },
            unauthenticated,
            Exactly("no API key: send the metadata `authorization: Bearer <key>`".into()),
        ),
        (
            "another authorization scheme",
            Cred::Raw("Basic YWRtaW46YWRtaW4="),
            ListJobs { all_tenants: false },
            unauthenticated,
            Exactly("malformed authorization metadata: expected `Bearer <key>`".into()),
        ),
        (
            "a key of another format",
            Cred::Key("sk-0123456789".into()),
            ListJobs { all_tenants: false },
            unauthenticated,
            Exactly("malformed key: a fresco key starts with fresco_k_ (client key) or fresco_w_ (worker token)".into()),
        ),
        (
            "a truncated key",
            Cred::Key(w.a_submitter[..30].to_owned()),
            GetJob(w.a_job.clone()),
            unauthenticated,
            Exactly("malformed key: a fresco key is 65 characters: letters, digits, - and _".into()),
        ),
        (
            "an unknown key",
            Cred::Key(unknown.clone()),
            GetJob(w.a_job.clone()),
            unauthenticated,
            Exactly(format!("unknown key {}", key_id(&unknown))),
        ),
        (
            "a wrong secret for a known id",
            Cred::Key(wrong_secret),
            GetJob(w.a_job.clone()),
            unauthenticated,
            Exactly(format!("wrong secret for key {}", key_id(&w.a_submitter))),
        ),
        (
            "a revoked key",
            Cred::Key(w.revoked.clone()),
            CancelJob(w.a_job.clone()),
            unauthenticated,
            StartsWith(format!("key {} was revoked at ", key_id(&w.revoked))),
        ),
        // Each credential opens its own API only.
        (
            "a worker token submitting",
            token.clone(),
            Submit(Box::new(submission("from a worker", "w-1"))),
            denied,
            as_worker("SubmitJob"),
        ),
        (
            "a worker token reading a job",
            token.clone(),
            GetJob(w.a_job.clone()),
            denied,
            as_worker("GetJob"),
        ),
        (
            "a worker token listing jobs",
            token.clone(),
            ListJobs { all_tenants: true },
            denied,
            as_worker("ListJobs"),
        ),
        (
            "a worker token cancelling",
            token.clone(),
            CancelJob(w.b_job.clone()),
            denied,
            as_worker("CancelJob"),
        ),
        (
            "a worker token reading a manifest",
            token.clone(),
            JobManifest(w.a_job.clone()),
            denied,
            as_worker("JobManifest"),
        ),
        (
            "a worker token listing workers",
            token.clone(),
            ListWorkers,
            denied,
            as_worker("ListWorkers"),
        ),
        (
            "an admin key registering a worker",
            admin.clone(),
            Register(String::new()),
            denied,
            as_client("RegisterWorker"),
        ),
        (
            "a client key claiming",
            a.clone(),
            Claim {
                worker: w.worker.clone(),
                task: w.b_task.clone(),
            },
            denied,
            as_client("ClaimTask"),
        ),
        (
            "an admin key heartbeating",
            admin.clone(),
            Heartbeat {
                worker: w.worker.clone(),
                task: w.b_task.clone(),
            },
            denied,
            as_client("Heartbeat"),
        ),
        // Another tenant's things answer as missing ones.
        (
            "a job that does not exist",
            a.clone(),
            GetJob(MISSING_JOB.into()),
            missing,
            job_missing(MISSING_JOB),
        ),
        (
            "B's job read by A",
            a.clone(),
            GetJob(w.b_job.clone()),
            missing,
            job_missing(&w.b_job),
        ),
        (
            "B's job watched by A",
            viewer.clone(),
            WatchJob(w.b_job.clone()),
            missing,
            job_missing(&w.b_job),
        ),
        (
            "B's manifest read by A",
            viewer.clone(),
            JobManifest(w.b_job.clone()),
            missing,
            job_missing(&w.b_job),
        ),
        (
            "B's tasks listed by A",
            a.clone(),
            ListTasks(w.b_job.clone()),
            missing,
            job_missing(&w.b_job),
        ),
        (
            "B's job cancelled by A",
            a.clone(),
            CancelJob(w.b_job.clone()),
            missing,
            job_missing(&w.b_job),
        ),
        (
            "B's job retried by A",
            a.clone(),
            RetryJob(w.b_job.clone()),
            missing,
            job_missing(&w.b_job),
        ),
        (
            "B's job paused by A",
            a.clone(),
            PauseJob(w.b_job.clone()),
            missing,
            job_missing(&w.b_job),
        ),
        (
            "B's job resumed by A",
            a.clone(),
            ResumeJob(w.b_job.clone()),
            missing,
            job_missing(&w.b_job),
        ),
        (
            "B's job reprioritized by A",
            a.clone(),
            SetJobPriority(w.b_job.clone()),
            missing,
            job_missing(&w.b_job),
        ),
        (
            "a task that does not exist",
            a.clone(),
            GetTask(MISSING_TASK.into()),
            missing,
            task_missing(MISSING_TASK),
        ),
        (
            "B's task read by A",
            a.clone(),
            GetTask(w.b_task.clone()),
            missing,
            task_missing(&w.b_task),
        ),
        (
            "B's task cancelled by A",
            a.clone(),
            CancelTask(w.b_task.clone()),
            missing,
            task_missing(&w.b_task),
        ),
        (
            "an output that does not exist",
            viewer.clone(),
            ReadOutput(format!("{}.missing.png", w.b_output)),
            missing,
            Exactly(format!("output {:?} not found", format!("{}.missing.png", w.b_output))),
        ),
        (
            "B's output read by A",
            viewer.clone(),
            ReadOutput(w.b_output.clone()),
            missing,
            Exactly(format!("output {:?} not found", w.b_output)),
        ),
        // Roles.
        (
            "a viewer submitting",
            viewer.clone(),
            Submit(Box::new(submission("from a viewer", "v-1"))),
            denied,
            Exactly("SubmitJob needs the submitter role; this key is a viewer".into()),
        ),
        (
            "a viewer cancelling its tenant's job",
            viewer.clone(),
            CancelJob(w.a_job.clone()),
            denied,
            Exactly("CancelJob needs the submitter role; this key is a viewer".into()),
        ),
        (
            "a viewer pausing its tenant's job",
            viewer.clone(),
            PauseJob(w.a_job.clone()),
            denied,
            Exactly("PauseJob needs the submitter role; this key is a viewer".into()),
        ),
        (
            "a viewer changing its tenant's job's priority",
            viewer.clone(),
            SetJobPriority(w.a_job.clone()),
            denied,
            Exactly("SetJobPriority needs the submitter role; this key is a viewer".into()),
        ),
        (
            "a viewer retrying its tenant's job",
            viewer.clone(),
            RetryJob(w.a_job.clone()),
            denied,
            Exactly("RetryJob needs the submitter role; this key is a viewer".into()),
        ),
        (
            "a submitter listing workers",
            a.clone(),
            ListWorkers,
            denied,
            Exactly("ListWorkers needs the admin role; this key is a submitter".into()),
        ),
        (
            "a submitter releasing a worker",
            a.clone(),
            ReleaseWorker(w.worker.clone()),
            denied,
            Exactly("ReleaseWorker needs the admin role; this key is a submitter".into()),
        ),
        (
            "a submitter draining a worker",
            a.clone(),
            DrainWorker(w.worker.clone()),
            denied,
            Exactly("DrainWorker needs the admin role; this key is a submitter".into()),
        ),
        (
            "a submitter listing every tenant's jobs",
            a.clone(),
            ListJobs { all_tenants: true },
            denied,
            Exactly(
                "ListJobs with all_tenants needs the admin role; this key is a submitter".into(),
            ),
        ),
        (
            "a viewer listing every tenant's jobs",
            viewer.clone(),
            ListJobs { all_tenants: true },
            denied,
            Exactly("ListJobs with all_tenants needs the admin role; this key is a viewer".into()),
        ),
        // A worker token acts only for the workers registered with it.
        (
            "another token heartbeating for a registered worker",
            other_token.clone(),
            {
                let (worker, task) = forged(&w.worker);
                Heartbeat { worker, task }
            },
            denied,
            not_bound(&w.worker),
        ),
        (
            "another token completing for a registered worker",
            other_token.clone(),
            {
                let (worker, task) = forged(&w.worker);
                Complete { worker, task }
            },
            denied,
            not_bound(&w.worker),
        ),
        (
            "another token failing for a registered worker",
            other_token.clone(),
            {
                let (worker, task) = forged(&w.worker);
                Fail { worker, task }
            },
            denied,
            not_bound(&w.worker),
        ),
        (
            "another token claiming for a registered worker",
            other_token.clone(),
            {
                let (worker, task) = forged(&w.worker);
                Claim { worker, task }
            },
            denied,
            not_bound(&w.worker),
        ),
        (
            "another token pinging for a registered worker",
            other_token.clone(),
            Ping(w.worker.clone()),
            denied,
            not_bound(&w.worker),
        ),
        (
            "another token registering a registered worker's id",
            other_token.clone(),
            Register(w.worker.clone()),
            denied,
            Exactly(format!(
                "worker {} is registered with another worker token",
                w.worker
            )),
        ),
        (
            "a heartbeat for a worker never registered",
            token.clone(),
            {
                let (worker, task) = forged(MISSING_WORKER);
                Heartbeat { worker, task }
            },
            denied,
            not_bound(MISSING_WORKER),
        ),
        (
            "a completion for a worker never registered",
            token.clone(),
            {
                let (worker, task) = forged(MISSING_WORKER);
                Complete { worker, task }
            },
            denied,
            not_bound(MISSING_WORKER),
        ),
        (
            "a failure for a worker never registered",
            token,
            {
                let (worker, task) = forged(MISSING_WORKER);
                Fail { worker, task }
            },
            denied,
            not_bound(MISSING_WORKER),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_is_refused_unless_its_key_may_make_it_and_nothing_changes() {
    let farm = Farm::start(FarmOptions {
        workers: 1,
        ..FarmOptions::default()
    })
    .await;
    let w = world(&farm).await;

    let before = farm.snapshot().await;
    let cases = cases(&farm, &w);
    assert!(cases.len() >= 30, "the table covers at least 30 calls");
    eprintln!("{} hostile calls", cases.len());
    let mut wrong = Vec::new();
    for (what, cred, call, code, says) in cases {
        let answer = send(&farm.endpoint, &cred, call).await;
        if farm.snapshot().await != before {
            wrong.push(format!("{what}: the stores changed"));
        }
        let Err(status) = answer else {
            wrong.push(format!("{what}: accepted"));
            continue;
        };
        let message = status.message();
        let worded = match &says {
            Says::Exactly(expected) => message == expected,
            Says::StartsWith(prefix) => message.starts_with(prefix.as_str()),
        };
        if status.code() != code || !worded {
            let expected = match says {
                Says::Exactly(m) | Says::StartsWith(m) => m,
            };
            wrong.push(format!(
                "{what}: got {:?} {message:?}, expected {code:?} {expected:?}",
                status.code()
            ));
        }
        assert!(
            !message.contains(&w.a_submitter[21..]) && !message.contains(&farm.worker_token[21..]),
            "{what}: the answer repeats a secret: {message}"
        );
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));

    // The CLI says what is wrong with the key, and exits 2.
    let unknown = format!("fresco_k_000000000000_{}", "A".repeat(43));
    let cli_cases: Vec<(&str, Option<&str>, Vec<&str>, String)> = vec![
        (
            "no key",
            None,
            vec!["list"],
            "error: the coordinator did not take the API key: no API key: send the metadata `authorization: Bearer <key>` (give a client key with --api-key or FRESCO_API_KEY)".into(),
        ),
        (
            "an unknown key",
            Some(&unknown),
            vec!["status", &w.a_job],
            "error: the coordinator did not take the API key: unknown key 000000000000 (give a client key with --api-key or FRESCO_API_KEY)".into(),
        ),
        (
            "a viewer submitting",
            Some(&w.a_viewer),
            vec!["submit", "--model", MODEL, "--prompt", "no"],
            "error: permission denied: SubmitJob needs the submitter role; this key is a viewer".into(),
        ),
        (
            "a submitter cancelling another tenant's job",
            Some(&w.a_submitter),
            vec!["cancel", &w.b_job],
            format!("error: job {} not found", w.b_job),
        ),
        (
            "a submitter listing every tenant",
            Some(&w.a_submitter),
            vec!["list", "--all-tenants"],
            "error: permission denied: ListJobs with all_tenants needs the admin role; this key is a submitter".into(),
        ),
        (
            "a key that cannot travel in metadata",
            Some("clé"),
            vec!["list"],
            "error: --api-key: the key holds characters a request cannot carry (only visible ASCII)".into(),
        ),
    ];
    for (what, key, args, expected) in cli_cases {
        let mut command = binary("fresco");
        command
            .args(["--coordinator", &farm.endpoint])
            .env_remove("FRESCO_API_KEY");
        if let Some(key) = key {
            command.args(["--api-key", key]);
        }
        let out = command.args(&args).output().expect("running fresco");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(2) || stderr.trim_end() != expected {
            wrong.push(format!(
                "{what}: expected exit 2 and {expected:?}: {}",
                describe(&out)
            ));
        }
        if farm.snapshot().await != before {
            wrong.push(format!("{what}: the stores changed"));
        }
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
}

#[test]
fn fresco_dev_without_keys_listens_on_loopback_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let listen = format!("0.0.0.0:{}", free_port());
    let out = binary("fresco")
        .args(["dev", "--listen", &listen, "--data-dir"])
        .arg(&data)
        .output()
        .expect("running fresco dev");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        format!(
            "error: --listen {listen}: fresco dev serves without keys, so it listens on a loopback address only (127.0.0.1, [::1] or localhost); to serve other machines, turn keys on with --auth and make them with `fresco dev keys create`"
        ),
        "{}",
        describe(&out)
    );
    assert!(!data.exists(), "nothing was started: no data directory");
}
