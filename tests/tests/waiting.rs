//! A stuck job explains itself and has a deadline, through the real
//! binaries: a job for a model no live worker serves is accepted with a
//! warning, shows why it waits in `fresco status --json`, and fails at its
//! deadline; a paused job says `paused`; a bad `--deadline` is refused.

use std::time::Duration;

use fresco_e2e::{Farm, FarmOptions, binary, describe, stdout_json, wait_until};
use sqlx::Row;

const MODEL: &str = "tiny-random-dit";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_no_live_worker_serves_says_why_and_fails_at_its_deadline() {
    let mut farm = Farm::start(FarmOptions {
        workers: 1,
        lease_seconds: 2,
        heartbeat_seconds: 1,
        ..FarmOptions::default()
    })
    .await;
    farm.workers[0].signal("KILL");
    farm.workers[0].wait_exit(Duration::from_secs(10));
    // Live means seen within two leases: wait until Postgres says none is.
    let pool = farm.db.pool().await;
    wait_until(
        "the only worker to stop being live",
        Duration::from_secs(30),
        || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM workers WHERE last_seen_at > now() - interval '4 seconds'",
            )
            .fetch_one(&pool)
            .await
            .is_ok_and(|n| n == 0)
            }
        },
    )
    .await;

    let out = farm.cli(&[
        "submit",
        "--model",
        MODEL,
        "--prompt",
        "nobody home",
        "--deadline",
        "3s",
    ]);
    assert!(out.status.success(), "accepted: {}", describe(&out));
    let job_id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        !job_id.is_empty() && !job_id.contains('\n'),
        "the id alone: {job_id:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let reason_prefix = format!("no live worker serves model {MODEL} (last seen ");
    assert!(
        stderr.contains(&format!("warning: {reason_prefix}")),
        "{}",
        describe(&out)
    );

    let status = farm.status(&job_id);
    let reason = status["waiting_reason"].as_str().expect("a waiting reason");
    assert!(
        reason.starts_with(&reason_prefix) && reason.ends_with(" ago)"),
        "{status}"
    );
    let deadline = status["deadline"].as_str().expect("a deadline").to_owned();
    let text = farm.cli(&["status", &job_id]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains(&format!("waiting: {reason_prefix}")),
        "{}",
        describe(&text)
    );

    let done = farm.wait_finished(&job_id, Duration::from_secs(30)).await;
    assert_eq!(done["counts"]["failed"], 1, "{done}");
    assert_eq!(done["waiting_reason"], "", "nothing waits any more: {done}");
    let message = done["tasks"][0]["errors"][0]["message"]
        .as_str()
        .expect("an error entry")
        .to_owned();
    assert_eq!(
        message,
        format!("deadline {deadline} passed while the task was still queued")
    );
    let row = sqlx::query("SELECT state, errors->0->>'kind' AS kind FROM tasks")
        .fetch_one(&pool)
        .await
        .expect("the task");
    assert_eq!(row.get::<String, _>("state"), "failed");
    assert_eq!(
        row.get::<Option<String>, _>("kind").as_deref(),
        Some("deadline")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_job_says_paused() {
    let farm = Farm::start(FarmOptions {
        workers: 0,
        ..FarmOptions::default()
    })
    .await;
    let out = farm.cli(&["submit", "--model", MODEL, "--prompt", "later"]);
    assert!(out.status.success(), "{}", describe(&out));
    let job_id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let never = format!("no worker has ever served model {MODEL}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("warning: {never}")),
        "{}",
        describe(&out)
    );
    assert_eq!(farm.status(&job_id)["waiting_reason"], never.as_str());

    let out = farm.cli(&["pause", &job_id]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(farm.status(&job_id)["waiting_reason"], "paused");
    let listed = stdout_json(&farm.cli(&["list", "--json"]));
    assert_eq!(listed[0]["waiting_reason"], "paused", "{listed}");
    let list = farm.cli(&["list"]);
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("(waiting: paused)"),
        "{}",
        describe(&list)
    );

    let out = farm.cli(&["resume", &job_id]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(farm.status(&job_id)["waiting_reason"], never.as_str());
}

#[test]
fn a_deadline_that_is_not_a_duration_of_seconds_is_refused() {
    for (bad, says) in [
        ("0", "at least 1s"),
        ("0s", "at least 1s"),
        ("soon", "give a duration such as 90s"),
        ("1500ms", "whole number of seconds"),
    ] {
        let out = binary("fresco")
            .args(["--coordinator", "http://127.0.0.1:9"])
            .args(["submit", "--prompt", "x", "--deadline", bad])
            .output()
            .expect("running fresco");
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--deadline") && stderr.contains(says),
            "{bad}: {}",
            describe(&out)
        );
    }
}
