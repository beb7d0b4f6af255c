//! Bad input through the real coordinator and CLI: one table of malformed
//! and hostile requests (gRPC) and one of hostile command lines and prompts
//! files (the `fresco` binary). Each must get its precise error: the code
//! and the whole message (the field with the rule it broke), or the whole
//! of stderr and exit status 2. After every case, Postgres (every row of
//! every table), Redis (every key and its length) and the bucket prefix
//! (listed through S3) must hold exactly what they held with the one job
//! accepted before the table.

use fresco_e2e::{Farm, FarmOptions, JobClient, describe};
use fresco_proto::v1 as pb;
use tonic::Code;

fn task(prompt: &str) -> pb::TaskParams {
    pb::TaskParams {
        prompt: Some(prompt.into()),
        ..Default::default()
    }
}

fn ok() -> pb::SubmitJobRequest {
    pb::SubmitJobRequest {
        model: "tiny-random-dit".into(),
        tasks: vec![task("fine")],
        ..Default::default()
    }
}

/// A valid job whose second task is `t`.
fn with_task(t: pb::TaskParams) -> pb::SubmitJobRequest {
    pb::SubmitJobRequest {
        tasks: vec![task("fine"), t],
        ..ok()
    }
}

fn params(f: impl FnOnce(&mut pb::TaskParams)) -> pb::TaskParams {
    let mut t = task("a");
    f(&mut t);
    t
}

/// A job whose tasks the sweep makes, over one prompt.
fn sweep(f: impl FnOnce(&mut pb::Sweep)) -> pb::SubmitJobRequest {
    let mut sweep = pb::Sweep {
        prompts: vec![pb::SweepPrompt {
            prompt: "a".into(),
            negative_prompt: None,
        }],
        ..Default::default()
    };
    f(&mut sweep);
    pb::SubmitJobRequest {
        tasks: vec![],
        sweep: Some(sweep),
        ..ok()
    }
}

fn size(width: u32, height: u32) -> pb::Size {
    pb::Size { width, height }
}

/// One request to the API.
enum Call {
    Submit(Box<pb::SubmitJobRequest>),
    GetJob(&'static str),
    CancelJob(&'static str),
    WatchJob(&'static str),
    GetTask(&'static str),
    ListTasks(pb::ListTasksRequest),
    ReadOutput(&'static str),
}

async fn send(client: &mut JobClient, call: Call) -> Result<(), tonic::Status> {
    let id = |s: &str| s.to_owned();
    match call {
        Call::Submit(r) => client.submit_job(*r).await.map(drop),
        Call::GetJob(j) => client
            .get_job(pb::GetJobRequest { job_id: id(j) })
            .await
            .map(drop),
        Call::CancelJob(j) => client
            .cancel_job(pb::CancelJobRequest { job_id: id(j) })
            .await
            .map(drop),
        Call::WatchJob(j) => client
            .watch_job(pb::WatchJobRequest { job_id: id(j) })
            .await
            .map(drop),
        Call::GetTask(t) => client
            .get_task(pb::GetTaskRequest { task_id: id(t) })
            .await
            .map(drop),
        Call::ListTasks(r) => client.list_tasks(r).await.map(drop),
        Call::ReadOutput(k) => {
            let mut stream = client
                .read_output(pb::ReadOutputRequest { key: id(k) })
                .await?
                .into_inner();
            // A stream's error may come with its first message.
            stream.message().await.map(drop)
        }
    }
}

const SQL: &str = "x'; DROP TABLE tasks; --";
const MISSING: &str = "0190f1c2-7b1e-7000-8000-000000000000";

fn grpc_cases() -> Vec<(&'static str, Call, Code, String)> {
    use Call::*;
    let submit = |r: pb::SubmitJobRequest| Call::Submit(Box::new(r));
    let invalid = Code::InvalidArgument;
    let many_tasks = pb::SubmitJobRequest {
        tasks: vec![task("p"); 1_000_001],
        ..ok()
    };
    vec![
        (
            "empty prompt",
            submit(with_task(task(""))),
            invalid,
            "tasks[1].prompt: must not be empty".into(),
        ),
        (
            "1 MB prompt",
            submit(with_task(task(&"x".repeat(1 << 20)))),
            invalid,
            "tasks[1].prompt: must be at most 2000 characters (got 1048576)".into(),
        ),
        (
            "bell in a prompt",
            submit(with_task(task("a\u{7}b"))),
            invalid,
            "tasks[1].prompt: must not contain control characters (found U+0007)".into(),
        ),
        (
            "NUL in a prompt",
            submit(with_task(task("a\0b"))),
            invalid,
            "tasks[1].prompt: must not contain control characters (found U+0000)".into(),
        ),
        (
            "escape sequence in a prompt",
            submit(with_task(task("\u{1b}[2Jred"))),
            invalid,
            "tasks[1].prompt: must not contain control characters (found U+001B)".into(),
        ),
        (
            "1 MB negative prompt",
            submit(with_task(params(|t| {
                t.negative_prompt = Some("n".repeat(1 << 20))
            }))),
            invalid,
            "tasks[1].negative_prompt: must be at most 2000 characters (got 1048576)".into(),
        ),
        (
            "zero steps",
            submit(with_task(params(|t| t.steps = Some(0)))),
            invalid,
            "tasks[1].steps: must be between 1 and 200 (got 0)".into(),
        ),
        (
            "10 000 steps",
            submit(with_task(params(|t| t.steps = Some(10_000)))),
            invalid,
            "tasks[1].steps: must be between 1 and 200 (got 10000)".into(),
        ),
        (
            "zero images",
            submit(with_task(params(|t| t.n = Some(0)))),
            invalid,
            "tasks[1].n: must be between 1 and 16 (got 0)".into(),
        ),
        (
            "4 billion images",
            submit(with_task(params(|t| t.n = Some(u32::MAX)))),
            invalid,
            "tasks[1].n: must be between 1 and 16 (got 4294967295)".into(),
        ),
        (
            "zero width",
            submit(with_task(params(|t| t.width = Some(0)))),
            invalid,
            "tasks[1].width: must be a positive multiple of 8 (got 0)".into(),
        ),
        (
            "odd width",
            submit(with_task(params(|t| t.width = Some(33)))),
            invalid,
            "tasks[1].width: must be a positive multiple of 8 (got 33)".into(),
        ),
        (
            "huge height",
            submit(with_task(params(|t| t.height = Some(1 << 20)))),
            invalid,
            "tasks[1].height: must be at most 2048 (got 1048576)".into(),
        ),
        (
            "u32::MAX height",
            submit(with_task(params(|t| t.height = Some(u32::MAX)))),
            invalid,
            "tasks[1].height: must be a positive multiple of 8 (got 4294967295)".into(),
        ),
        (
            "NaN guidance",
            submit(with_task(params(|t| t.guidance = Some(f32::NAN)))),
            invalid,
            "tasks[1].guidance: must be finite (got NaN)".into(),
        ),
        (
            "infinite guidance",
            submit(with_task(params(|t| t.guidance = Some(f32::INFINITY)))),
            invalid,
            "tasks[1].guidance: must be finite (got inf)".into(),
        ),
        (
            "minus infinite guidance",
            submit(with_task(params(|t| t.guidance = Some(f32::NEG_INFINITY)))),
            invalid,
            "tasks[1].guidance: must be finite (got -inf)".into(),
        ),
        (
            "negative guidance",
            submit(with_task(params(|t| t.guidance = Some(-2.0)))),
            invalid,
            "tasks[1].guidance: must be between 0 and 50 (got -2)".into(),
        ),
        (
            "guidance 1e30",
            submit(with_task(params(|t| t.guidance = Some(1e30)))),
            invalid,
            "tasks[1].guidance: must be between 0 and 50 (got 1000000000000000000000000000000)".into(),
        ),
        (
            "unknown sampler",
            submit(with_task(params(|t| t.sampler = Some("warp".into())))),
            invalid,
            "tasks[1].sampler: unknown sampler \"warp\"; known: euler, heun, ddim, ddpm, euler_a, dpmpp_2m, dpmpp_2m_karras, unipc, flow_euler".into(),
        ),
        (
            "a sampler the model cannot run",
            submit(with_task(params(|t| t.sampler = Some("ddim".into())))),
            invalid,
            "tasks[1].sampler: tiny-random-dit runs euler, heun (got ddim)".into(),
        ),
        (
            "wider than the model draws",
            submit(with_task(params(|t| t.width = Some(1024)))),
            invalid,
            "tasks[1].width: tiny-random-dit draws at most 512 (got 1024)".into(),
        ),
        (
            "a beta-schedule knob for a flow-matching model",
            submit(with_task(params(|t| {
                t.schedule = Some(pb::Schedule {
                    eta: Some(0.5),
                    ..Default::default()
                })
            }))),
            invalid,
            "tasks[1].schedule: tiny-random-dit is a flow-matching model and reads only flow_shift of the schedule knobs (got eta)".into(),
        ),
        (
            "SQL in a sampler",
            submit(with_task(params(|t| t.sampler = Some(SQL.into())))),
            invalid,
            "tasks[1].sampler: unknown sampler \"x'; DROP TABLE tasks; --\"; known: euler, heun, ddim, ddpm, euler_a, dpmpp_2m, dpmpp_2m_karras, unipc, flow_euler".into(),
        ),
        (
            "bad job default",
            submit(pb::SubmitJobRequest {
                defaults: Some(params(|t| {
                    t.prompt = None;
                    t.steps = Some(0)
                })),
                ..ok()
            }),
            invalid,
            "defaults.steps: must be between 1 and 200 (got 0)".into(),
        ),
        (
            "no tasks",
            submit(pb::SubmitJobRequest {
                tasks: vec![],
                ..ok()
            }),
            invalid,
            "tasks: must hold at least one task".into(),
        ),
        (
            "a million and one tasks",
            submit(many_tasks),
            invalid,
            "tasks: must hold at most 1000000 tasks (got 1000001)".into(),
        ),
        (
            "a sweep and tasks together",
            submit(pb::SubmitJobRequest {
                tasks: vec![task("one")],
                ..sweep(|s| s.seeds = vec![1, 2])
            }),
            invalid,
            "sweep: must not be set together with tasks: a sweep makes the job's tasks".into(),
        ),
        (
            "a sweep past the task limit",
            submit(sweep(|s| {
                s.seeds = (0..1_001).collect();
                s.guidance = vec![4.0; 1_000];
            })),
            invalid,
            "sweep: makes 1001000 tasks (1 prompt × 1001 seeds × 1000 guidance values), more than the limit of 1000000 tasks per job".into(),
        ),
        (
            "a sweep whose product overflows",
            submit(sweep(|s| {
                s.prompts.clear();
                s.seeds = vec![1; 1 << 16];
                s.guidance = vec![4.0; 1 << 16];
                s.steps = vec![2; 1 << 16];
                s.samplers = vec!["euler".into(); 1 << 16];
            })),
            invalid,
            "sweep: makes over 2^64 tasks (65536 seeds × 65536 guidance values × 65536 step counts × 65536 samplers), more than the limit of 1000000 tasks per job".into(),
        ),
        (
            "an empty sweep",
            submit(sweep(|s| s.prompts.clear())),
            invalid,
            "sweep: must vary at least one axis: prompts, seeds, guidance, steps, samplers or sizes".into(),
        ),
        (
            "a sweep with no prompt anywhere",
            submit(sweep(|s| {
                s.prompts.clear();
                s.seeds = vec![1, 2];
            })),
            invalid,
            "sweep.prompts: must hold at least one prompt when defaults.prompt is unset".into(),
        ),
        (
            "an empty prompt on a sweep axis",
            submit(sweep(|s| {
                s.prompts.push(pb::SweepPrompt::default());
            })),
            invalid,
            "sweep.prompts[1].prompt: must not be empty".into(),
        ),
        (
            "a negative guidance on a sweep axis",
            submit(sweep(|s| s.guidance = vec![3.0, 5.0, -1.0])),
            invalid,
            "sweep.guidance[2]: must be between 0 and 50 (got -1)".into(),
        ),
        (
            "NaN guidance on a sweep axis",
            submit(sweep(|s| s.guidance = vec![f32::NAN])),
            invalid,
            "sweep.guidance[0]: must be finite (got NaN)".into(),
        ),
        (
            "zero steps on a sweep axis",
            submit(sweep(|s| s.steps = vec![20, 0])),
            invalid,
            "sweep.steps[1]: must be between 1 and 200 (got 0)".into(),
        ),
        (
            "an odd size on a sweep axis",
            submit(sweep(|s| s.sizes = vec![size(32, 32), size(32, 33)])),
            invalid,
            "sweep.sizes[1].height: must be a positive multiple of 8 (got 33)".into(),
        ),
        (
            "a size wider than the model draws on a sweep axis",
            submit(sweep(|s| s.sizes = vec![size(32, 32), size(1024, 32)])),
            invalid,
            "sweep.sizes[1].width: tiny-random-dit draws at most 512 (got 1024)".into(),
        ),
        (
            "a sampler the model cannot run on a sweep axis",
            submit(sweep(|s| s.samplers = vec!["euler".into(), "ddim".into()])),
            invalid,
            "sweep.samplers[1]: tiny-random-dit runs euler, heun (got ddim)".into(),
        ),
        (
            "SQL as a sampler on a sweep axis",
            submit(sweep(|s| s.samplers = vec![SQL.into()])),
            invalid,
            "sweep.samplers[0]: unknown sampler \"x'; DROP TABLE tasks; --\"; known: euler, heun, ddim, ddpm, euler_a, dpmpp_2m, dpmpp_2m_karras, unipc, flow_euler".into(),
        ),
        (
            "unknown model",
            submit(pb::SubmitJobRequest {
                model: "sd-99".into(),
                ..ok()
            }),
            invalid,
            "model: unknown model \"sd-99\": no worker serves it and it is not built in".into(),
        ),
        (
            "path traversal in a model",
            submit(pb::SubmitJobRequest {
                model: "../../etc/passwd".into(),
                ..ok()
            }),
            invalid,
            "model: must be letters, digits, '.', '_', '-' or '/' (got \"../../etc/passwd\")".into(),
        ),
        (
            "traversal inside a model",
            submit(pb::SubmitJobRequest {
                model: "a/../../b".into(),
                ..ok()
            }),
            invalid,
            "model: must be letters, digits, '.', '_', '-' or '/' (got \"a/../../b\")".into(),
        ),
        (
            "SQL in a model",
            submit(pb::SubmitJobRequest {
                model: SQL.into(),
                ..ok()
            }),
            invalid,
            "model: must be letters, digits, '.', '_', '-' or '/' (got \"x'; DROP TABLE tasks; --\")".into(),
        ),
        (
            "long job name",
            submit(pb::SubmitJobRequest {
                name: "n".repeat(100_000),
                ..ok()
            }),
            invalid,
            "name: must be at most 200 characters".into(),
        ),
        (
            "control character in an owner",
            submit(pb::SubmitJobRequest {
                owner: "me\u{8}".into(),
                ..ok()
            }),
            invalid,
            "owner: must not contain control characters (found U+0008)".into(),
        ),
        (
            "huge priority",
            submit(pb::SubmitJobRequest {
                priority: i32::MAX,
                ..ok()
            }),
            invalid,
            "priority: must be between -1000 and 1000 (got 2147483647)".into(),
        ),
        (
            "huge max_attempts",
            submit(pb::SubmitJobRequest {
                max_attempts: u32::MAX,
                ..ok()
            }),
            invalid,
            "max_attempts: must be at most 20 (got 4294967295)".into(),
        ),
        (
            "job id not a UUID",
            GetJob("nope"),
            invalid,
            "job_id: must be a UUID (got \"nope\")".into(),
        ),
        ("SQL as a job id", GetJob(SQL), invalid, "job_id: must be a UUID (got \"x'; DROP TABLE tasks; --\")".into()),
        ("empty job id", CancelJob(""), invalid, "job_id: must be a UUID (got \"\")".into()),
        (
            "watch of a bad id",
            WatchJob("../../etc/passwd"),
            invalid,
            "job_id: must be a UUID (got \"../../etc/passwd\")".into(),
        ),
        (
            "task id not a UUID",
            GetTask("12345"),
            invalid,
            "task_id: must be a UUID (got \"12345\")".into(),
        ),
        (
            "unknown state enum",
            ListTasks(pb::ListTasksRequest {
                job_id: MISSING.into(),
                state: 99,
                ..Default::default()
            }),
            invalid,
            "state: unknown task state 99".into(),
        ),
        (
            "a job that does not exist",
            GetJob(MISSING),
            Code::NotFound,
            format!("job {MISSING} not found"),
        ),
        (
            "cancel of a job that does not exist",
            CancelJob(MISSING),
            Code::NotFound,
            format!("job {MISSING} not found"),
        ),
        (
            "path traversal as an output key",
            ReadOutput("../../../etc/passwd"),
            Code::NotFound,
            "output \"../../../etc/passwd\" not found".into(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_precise_errors_and_store_nothing() {
    let farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    let mut client = farm.job_client().await;
    // Accepted before the onslaught: it must come out of it untouched.
    let accepted = client
        .submit_job(pb::SubmitJobRequest {
            tasks: vec![task("one"), task("two"), task("three")],
            name: "../../keys/never/reach/names".into(),
            ..ok()
        })
        .await
        .expect("a valid job is accepted")
        .into_inner()
        .job
        .expect("a job");

    // Every store as it stands with the accepted job: each case below must
    // leave all three exactly so.
    let before = farm.snapshot().await;
    assert_eq!(before.postgres["tasks"].0, 3, "the accepted job's tasks");
    assert_eq!(
        before
            .redis
            .iter()
            .filter(|(key, _)| key.contains(":queue:"))
            .map(|(_, (_, len))| len)
            .sum::<i64>(),
        3,
        "the accepted job's tasks are in its tenant's dispatch queue: {:?}",
        before.redis
    );

    let cases = grpc_cases();
    assert!(cases.len() >= 30, "the table covers at least 30 requests");
    let mut wrong = Vec::new();
    for (what, call, code, expected) in cases {
        let status = send(&mut client, call).await.expect_err(what);
        if (status.code(), status.message()) != (code, expected.as_str()) {
            wrong.push(format!(
                "{what}: got {:?} {:?}, expected {code:?} {expected:?}",
                status.code(),
                status.message()
            ));
        }
        assert_eq!(farm.snapshot().await, before, "{what}: the stores changed");
    }
    assert!(
        wrong.is_empty(),
        "whole messages differ:\n{}",
        wrong.join("\n")
    );

    // The CLI, from flags and prompts files, exits 2 naming what is wrong.
    let dir = farm.dir.path();
    let file = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("writing a prompts file");
        path.to_str().expect("utf-8 path").to_owned()
    };
    // Each case's command line; run one at a time, the stores read after each.
    let submit = |extra: &[&str]| -> Vec<String> {
        ["submit", "--model", "tiny-random-dit"]
            .iter()
            .chain(extra)
            .map(|a| (*a).to_owned())
            .collect()
    };
    let command = |args: &[&str]| -> Vec<String> { args.iter().map(|a| (*a).to_owned()).collect() };
    let dir_text = dir.display().to_string();
    let cli_cases: Vec<(&str, Vec<String>, String)> = vec![
        (
            "a wrong type on line 2 of a JSONL file",
            submit(&[
                "--prompts-file",
                &file(
                    "type.jsonl",
                    b"{\"prompt\": \"a\"}\n{\"prompt\": \"b\", \"steps\": \"many\"}\n",
                ),
            ]),
            "error: DIR/type.jsonl:2: invalid type: string \"many\", expected u32 at line 1 column 31".into(),
        ),
        (
            "invalid UTF-8 on line 3",
            submit(&[
                "--prompts-file",
                &file("latin1.txt", b"one\ntwo\ncaf\xe9 au lait\n"),
            ]),
            "error: DIR/latin1.txt:3: not valid UTF-8 (invalid utf-8 sequence of 1 bytes from index 3)".into(),
        ),
        (
            "a control character in a prompts file",
            submit(&[
                "--prompts-file",
                &file("bell.txt", b"fine\nring \x07 the bell\n"),
            ]),
            "error: DIR/bell.txt:2: control character U+0007 in text".into(),
        ),
        (
            "a CSV file without a prompt column",
            submit(&["--prompts-file", &file("cols.csv", b"text,seed\na,1\n")]),
            "error: DIR/cols.csv:1: the header has no \"prompt\" column".into(),
        ),
        (
            "an empty prompts file",
            submit(&["--prompts-file", &file("empty.txt", b"\n\n")]),
            "error: the file holds no prompts".into(),
        ),
        (
            "an unknown file type",
            submit(&["--prompts-file", &file("prompts.yaml", b"- a\n")]),
            "error: DIR/prompts.yaml: unknown prompts file type (expected .txt, .jsonl or .csv)".into(),
        ),
        (
            "a prompts file that does not exist",
            submit(&["--prompts-file", "/nonexistent/prompts.txt"]),
            "error: /nonexistent/prompts.txt: No such file or directory (os error 2)".into(),
        ),
        (
            "NaN guidance from a flag",
            submit(&["--prompt", "a", "--guidance", "NaN"]),
            "error: defaults.guidance: must be finite (got NaN)".into(),
        ),
        (
            "infinite guidance from a flag",
            submit(&["--prompt", "a", "--guidance", "inf"]),
            "error: defaults.guidance: must be finite (got inf)".into(),
        ),
        (
            "a negative width",
            submit(&["--prompt", "a", "--width", "-64"]),
            "error: invalid value '-64' for '--width <WIDTH>': -64 is not in 0..=4294967295\n\nFor more information, try '--help'.".into(),
        ),
        (
            "zero steps from a flag",
            submit(&["--prompt", "a", "--steps", "0"]),
            "error: defaults.steps: must be between 1 and 200 (got 0)".into(),
        ),
        (
            "a seed range that is not one",
            submit(&["--prompt", "a", "--seeds", "1-x"]),
            "error: invalid value '1-x' for '--seeds <SEEDS>': \"1-x\" is not a seed (0 to 18446744073709551615) or a range of seeds such as 1-8\n\nFor more information, try '--help'.".into(),
        ),
        (
            "a seed range that goes down",
            submit(&["--prompt", "a", "--seeds", "1,8-2"]),
            "error: invalid value '1,8-2' for '--seeds <SEEDS>': \"8-2\" is a range that goes down; write it as 2-8\n\nFor more information, try '--help'.".into(),
        ),
        (
            "a size that is not one",
            submit(&["--prompt", "a", "--size", "64x64,64by64"]),
            "error: invalid value '64by64' for '--size <WIDTHxHEIGHT>': \"64by64\" is not a size: write WIDTHxHEIGHT, e.g. 768x512\n\nFor more information, try '--help'.".into(),
        ),
        (
            "a bad value in a guidance list",
            submit(&["--prompt", "a", "--guidance", "3,5,-1"]),
            "error: sweep.guidance[2]: must be between 0 and 50 (got -1)".into(),
        ),
        (
            "a sampler list the model cannot run",
            submit(&["--prompt", "a", "--sampler", "euler,ddim"]),
            "error: sweep.samplers[1]: tiny-random-dit runs euler, heun (got ddim)".into(),
        ),
        (
            "a sweep past the task limit from flags",
            submit(&["--prompt", "a", "--seeds", "1-100000", "--steps", "1,2,3,4,5,6,7,8,9,10,11"]),
            "error: sweep: makes 1100000 tasks (1 prompt × 100000 seeds × 11 step counts), more than the limit of 1000000 tasks per job".into(),
        ),
        (
            "a prompts file entry that sets what a sweep varies",
            submit(&[
                "--seeds",
                "1-2",
                "--prompts-file",
                &file("study.jsonl", b"{\"prompt\": \"a\"}\n{\"prompt\": \"b\", \"guidance\": 3}\n"),
            ]),
            "error: prompts file entry 2 sets guidance: in a sweep a prompt sets only prompt and negative_prompt; give guidance for the whole job as a flag (a list of values sweeps it)".into(),
        ),
        (
            "SQL in a model flag",
            command(&["submit", "--model", SQL, "--prompt", "a"]),
            "error: model: must be letters, digits, '.', '_', '-' or '/' (got \"x'; DROP TABLE tasks; --\")".into(),
        ),
        (
            "a status of a bad job id",
            command(&["status", "'; DROP TABLE jobs; --"]),
            "error: job_id: must be a UUID (got \"'; DROP TABLE jobs; --\")".into(),
        ),
        (
            "a cancel of a job that does not exist",
            command(&["cancel", MISSING]),
            format!("error: job {MISSING} not found"),
        ),
    ];
    for (what, args, expected) in cli_cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = farm.cli(&args);
        // The whole of stderr, the test's own directory written as DIR.
        let stderr = String::from_utf8_lossy(&out.stderr).replace(&dir_text, "DIR");
        if out.status.code() != Some(2) || stderr.trim_end() != expected {
            wrong.push(format!(
                "{what}: expected exit 2 and {expected:?}: {}",
                describe(&out)
            ));
        }
        assert_eq!(farm.snapshot().await, before, "{what}: the stores changed");
    }
    assert!(
        wrong.is_empty(),
        "whole messages differ:\n{}",
        wrong.join("\n")
    );

    // Nothing half-stored: the accepted job, its three tasks, nothing else.
    let pool = farm.db.pool().await;
    let (jobs, tasks, queued): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM tasks),
                (SELECT count(*) FROM tasks WHERE job_id = $1::UUID AND state = 'queued')",
    )
    .bind(&accepted.id)
    .fetch_one(&pool)
    .await
    .expect("counting rows");
    assert_eq!(
        (jobs, tasks, queued),
        (1, 3, 3),
        "only the accepted job is stored"
    );
}
