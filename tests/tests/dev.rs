//! `fresco dev`, the one-process farm, through the real binary: the
//! README's first command run as a newcomer would (a clean directory, no
//! services), and a farm killed mid-job that finishes the job after a
//! restart, with the same `fresco` commands as against a production farm.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use fresco_e2e::{Proc, binary, decode_png, describe, free_port};
use fresco_shapes::analyze::analyze;
use fresco_shapes::caption::parse_prompt;
use fresco_worker::png::read_png_text;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// The arguments of `fresco` in the README's first command
/// (`cargo run ... --bin fresco -- ARGS`).
fn readme_first_command_args() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("reading README");
    let quickstart = readme
        .split("## Quickstart")
        .nth(1)
        .expect("the README has a Quickstart section");
    let block = quickstart
        .split("```sh\n")
        .nth(1)
        .expect("the Quickstart has a sh block");
    let first = block.lines().next().expect("the block has a first line");
    let command = first.split('#').next().unwrap_or_default().trim();
    let (cargo, args) = command
        .split_once(" -- ")
        .unwrap_or_else(|| panic!("{command:?} is not `cargo run ... -- ARGS`"));
    assert!(
        cargo.starts_with("cargo run") && cargo.contains("--bin fresco"),
        "the first command runs the fresco binary through cargo: {command:?}"
    );
    args.split_whitespace().map(str::to_owned).collect()
}

/// Images a JSONL prompts file asks for: `n` per line, default 1.
fn images_asked(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .expect("reading the prompts file")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let line: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            line["n"].as_u64().unwrap_or(1)
        })
        .sum()
}

#[test]
fn the_readme_first_command_renders_the_examples_on_a_clean_machine() {
    let args = readme_first_command_args();
    assert_eq!(
        args[..3],
        ["dev", "--submit", "examples/prompts.jsonl"],
        "the first command starts the dev farm on the bundled examples"
    );
    // A newcomer's checkout: the examples, and nothing else of fresco's.
    let home = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(home.path().join("examples")).expect("mkdir");
    let examples = home.path().join("examples/prompts.jsonl");
    std::fs::copy(repo_root().join("examples/prompts.jsonl"), &examples).expect("copy");

    let output = binary("fresco")
        .args(&args)
        .current_dir(home.path())
        // Tests run in parallel: a port of this test's own.
        .env("FRESCO_LISTEN", format!("127.0.0.1:{}", free_port()))
        .output()
        .expect("running fresco dev");
    assert!(output.status.success(), "{}", describe(&output));
    // Its images are files the in-process coordinator streams: file://
    // storage signs no URLs.
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(" through the coordinator"),
        "{}",
        describe(&output)
    );

    // The command names the folder with the images on its last line.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let folder = home
        .path()
        .join(stdout.lines().last().expect("a folder is named").trim());
    let mut pngs: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("reading {}: {e}\n{}", folder.display(), describe(&output)))
        .map(|entry| entry.expect("dir entry").path())
        .collect();
    pngs.sort();
    assert_eq!(
        pngs.len() as u64,
        images_asked(&examples),
        "every image asked for"
    );
    let prompts = std::fs::read_to_string(&examples).expect("reading the examples");
    let mut shapes_right = 0;
    for png in &pngs {
        let bytes = std::fs::read(png).expect("reading an image");
        let (width, height, text) = read_png_text(&bytes).expect("a valid PNG");
        // The examples name no model and no size: the default model renders
        // them at the size it was trained at.
        assert_eq!((width, height), (32, 32), "{}", png.display());
        let model = text.iter().find(|(key, _)| key == "model");
        assert_eq!(
            model.map(|(_, value)| value.as_str()),
            Some("fresco-shapes"),
            "{} is rendered by the default model",
            png.display()
        );
        let prompt = text
            .iter()
            .find(|(key, _)| key == "prompt")
            .map(|(_, value)| value.as_str())
            .unwrap_or_else(|| panic!("{} carries its prompt", png.display()));
        assert!(
            prompts.contains(prompt),
            "{prompt:?} is one of the examples"
        );
        // The examples ask only for what the model follows: the colour and
        // the background the analyzer reads are the ones the prompt names.
        let asked = parse_prompt(prompt);
        let (_, _, rgb) = decode_png(&bytes);
        let seen = analyze(&rgb, width, height).expect("analysing the image");
        assert_eq!(
            seen.background,
            asked.background.expect("a background"),
            "{prompt}"
        );
        assert_eq!(seen.foreground, asked.colour, "{prompt}");
        shapes_right += usize::from(seen.shape == asked.shape);
    }
    eprintln!("shapes as asked: {shapes_right} of {}", pngs.len());
    // Everything lasting is in the data directory it made.
    assert!(home.path().join(".fresco/fresco.db").is_file());
    assert!(home.path().join(".fresco/outputs").is_dir());
}

/// A `fresco dev` serving on its own port with its own data directory.
struct DevProcess {
    proc: Proc,
    endpoint: String,
}

fn start_dev(data_dir: &Path, port: u16, log: &Path) -> DevProcess {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("opening the log");
    let proc = Proc::spawn(
        "fresco dev",
        binary("fresco")
            .args(["dev", "--workers", "2", "--data-dir"])
            .arg(data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log),
    );
    DevProcess {
        proc,
        endpoint: format!("http://127.0.0.1:{port}"),
    }
}

fn cli(endpoint: &str, args: &[&str]) -> Output {
    binary("fresco")
        .args(["--coordinator", endpoint])
        .args(args)
        .output()
        .expect("running fresco")
}

fn status(endpoint: &str, job: &str) -> Option<serde_json::Value> {
    let output = cli(endpoint, &["status", "--json", "--tasks", "all", job]);
    if !output.status.success() {
        return None;
    }
    serde_json::from_slice(&output.stdout).ok()
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_dev_farm_killed_mid_job_finishes_it_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let log = dir.path().join("dev.log");
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let port = free_port();
    let mut dev = start_dev(&data, port, &log);

    let prompts = dir.path().join("prompts.txt");
    std::fs::write(
        &prompts,
        (0..24)
            .map(|i| format!("a shape number {i}\n"))
            .collect::<String>(),
    )
    .expect("writing prompts");
    let mut submitted = None;
    wait_for(
        "the dev farm to accept a job",
        Duration::from_secs(60),
        || {
            let output = cli(
                &dev.endpoint,
                &[
                    "submit",
                    "--model",
                    "tiny-random-dit",
                    "--prompts-file",
                    prompts.to_str().expect("utf-8 path"),
                    "--steps",
                    "40",
                    "--width",
                    "128",
                    "--height",
                    "128",
                    "--seed",
                    "7",
                ],
            );
            if output.status.success() {
                submitted = Some(String::from_utf8_lossy(&output.stdout).trim().to_owned());
            }
            output.status.success()
        },
    );
    let job = submitted.expect("a job id");

    // Kill the whole farm while tasks are running and others still wait.
    let mut mid_job = None;
    wait_for("a task to run", Duration::from_secs(60), || {
        let Some(s) = status(&dev.endpoint, &job) else {
            return false;
        };
        let running = s["counts"]["running"].as_u64().unwrap_or(0);
        let queued = s["counts"]["queued"].as_u64().unwrap_or(0);
        let ready = running > 0 && queued > 0;
        if ready {
            mid_job = Some(s);
        }
        ready
    });
    dev.proc.signal("KILL");
    dev.proc.wait_exit(Duration::from_secs(10));
    let before = mid_job.expect("a status mid-job");

    let dev = start_dev(&data, port, &log);
    wait_for(
        "the job to finish after the restart",
        Duration::from_secs(240),
        || status(&dev.endpoint, &job).is_some_and(|s| s["finished"] == true),
    );
    let after = status(&dev.endpoint, &job).expect("status");
    assert_eq!(
        after["counts"]["succeeded"],
        24,
        "every task succeeded: before the kill {before}, after {after}\n{}",
        logs()
    );

    // The tasks that were running when the farm died ran again, without a
    // failure counted against them, and each has exactly one image.
    let tasks = after["tasks"].as_array().expect("status lists the tasks");
    assert_eq!(tasks.len(), 24);
    let rerun = tasks
        .iter()
        .filter(|t| t["attempt"].as_u64().unwrap_or(0) >= 2)
        .count();
    assert!(
        rerun >= 1,
        "a task running at the kill ran again: {after}\n{}",
        logs()
    );
    for task in tasks {
        assert_eq!(
            task["errors"],
            serde_json::json!([]),
            "no failure recorded: {task}"
        );
        assert_eq!(task["outputs"].as_array().map(Vec::len), Some(1), "{task}");
    }
    let out = dir.path().join("out");
    let download = cli(
        &dev.endpoint,
        &[
            "download",
            job.as_str(),
            "--out",
            out.to_str().expect("utf-8 path"),
        ],
    );
    assert!(download.status.success(), "{}", describe(&download));
    assert_eq!(std::fs::read_dir(&out).expect("out dir").count(), 24);
    // `fresco dev` keeps its images in files: OutputUrls answers
    // FAILED_PRECONDITION and the download streams through it.
    let said = String::from_utf8_lossy(&download.stderr);
    assert!(
        said.starts_with("downloaded 24 images (") && said.contains(" through the coordinator"),
        "{said}"
    );
}

/// `fresco dev keys ARGS --data-dir DATA`; the output, checked to succeed.
fn dev_keys(data: &Path, args: &[&str]) -> Output {
    let output = binary("fresco")
        .args(["dev", "keys"])
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("running fresco dev keys");
    assert!(output.status.success(), "{}", describe(&output));
    output
}

#[test]
fn fresco_dev_with_auth_asks_for_keys_and_serves_beyond_loopback() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let log_path = dir.path().join("dev.log");
    let key = dev_keys(
        &data,
        &[
            "create",
            "--kind",
            "client",
            "--tenant",
            "studio",
            "--role",
            "submitter",
        ],
    );
    let key = String::from_utf8_lossy(&key.stdout).trim().to_owned();
    let port = free_port();
    let log = std::fs::File::create(&log_path).expect("a log file");
    let mut dev = Proc::spawn(
        "fresco dev --auth",
        binary("fresco")
            .args(["dev", "--auth", "--workers", "1", "--data-dir"])
            .arg(&data)
            // With keys, beyond loopback.
            .args(["--listen", &format!("0.0.0.0:{port}")])
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let with_key = |args: &[&str]| {
        binary("fresco")
            .args(["--coordinator", &endpoint, "--api-key", &key])
            .args(args)
            .output()
            .expect("running fresco")
    };
    wait_for(
        "fresco dev --auth to serve",
        Duration::from_secs(60),
        || with_key(&["list"]).status.success(),
    );

    // Without a key: refused, saying so.
    let refused = cli(&endpoint, &["list"]);
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no API key"),
        "{}",
        describe(&refused)
    );

    // With one: the job is the key's tenant's, and the farm's own workers,
    // calling with the token it made at start, render it.
    let submitted = with_key(&[
        "submit",
        "--model",
        "tiny-random-dit",
        "--prompt",
        "a key",
        "--steps",
        "2",
        "--wait",
    ]);
    assert!(
        submitted.status.success(),
        "{}\n{}",
        describe(&submitted),
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    let job = String::from_utf8_lossy(&submitted.stdout).trim().to_owned();
    let status = with_key(&["status", "--json", &job]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("JSON");
    assert_eq!(status["tenant"], "studio", "{status}");
    assert_eq!(status["counts"]["succeeded"], 1, "{status}");

    let listed = |data: &Path| -> serde_json::Value {
        serde_json::from_slice(&dev_keys(data, &["list", "--json"]).stdout).expect("JSON")
    };
    let workers_token = |keys: &serde_json::Value| {
        keys.as_array()
            .expect("keys")
            .iter()
            .find(|k| k["name"] == "fresco dev workers")
            .cloned()
            .unwrap_or_else(|| panic!("the dev workers' token in {keys}"))
    };
    let running = listed(&data);
    assert_eq!(workers_token(&running)["kind"], "worker", "{running}");
    assert!(workers_token(&running)["revoked_at"].is_null(), "{running}");

    // Stopped, the farm revokes its workers' token.
    dev.signal("TERM");
    assert!(dev.wait_exit(Duration::from_secs(30)).success());
    let stopped = listed(&data);
    assert!(
        !workers_token(&stopped)["revoked_at"].is_null(),
        "{stopped}"
    );
}
