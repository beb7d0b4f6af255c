//! The chaos test: 500 tasks on three workers while a random worker is
//! SIGKILLed (and replaced) every two seconds, Redis is flushed, the
//! coordinator is SIGKILLed and restarted, and S3 goes away for three
//! seconds. Every task must still succeed exactly once: one recorded set of
//! outputs from one attempt, every recorded object present and a valid PNG,
//! nothing left leased, no output rows that no succeeded attempt owns. The
//! faults must have interrupted work (failed attempts, tasks finished by a
//! later attempt); the bucket prefix, listed directly, must end up holding
//! exactly the recorded objects; and each image's text chunks must name
//! its own task's prompt and image seed.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use fresco_e2e::{Farm, FarmOptions, TcpProxy, describe, try_job_client_at};
use fresco_proto::v1 as pb;
use fresco_worker::png::read_png_text;

const TASKS: usize = 500;

/// A small deterministic generator for picking victims (xorshift64).
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

async fn job_state(farm: &Farm, job: &str) -> Option<pb::Job> {
    let mut client = try_job_client_at(&farm.endpoint, Some(&farm.admin_key)).await?;
    client
        .get_job(pb::GetJobRequest {
            job_id: job.to_owned(),
        })
        .await
        .ok()
        .map(tonic::Response::into_inner)
}

/// Reads an object that exists; a read cut short by a loaded S3 server
/// is tried again rather than taken for a lost image.
async fn read_with_retries(storage: &fresco_storage::Storage, key: &str) -> bytes::Bytes {
    let mut tries = 0;
    loop {
        match storage.get(key).await {
            Ok(bytes) => return bytes,
            Err(e) if tries < 5 => {
                eprintln!("reading {key} failed ({e}); trying again");
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{key} exists but cannot be read: {e}"),
        }
    }
}

async fn count(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_every_task_ends_exactly_once() {
    let s3 = std::env::var("FRESCO_TEST_S3_ENDPOINT")
        .expect("FRESCO_TEST_S3_ENDPOINT: run the tests with scripts/test.sh");
    let proxy = TcpProxy::start(s3.trim_start_matches("http://").trim_end_matches('/')).await;
    let mut farm = Farm::start(FarmOptions {
        workers: 3,
        lease_seconds: 4,
        heartbeat_seconds: 1,
        reconcile_ms: 300,
        reap_ms: 200,
        retry_backoff_ms: 200,
        // The farm reaches S3 through the proxy; the test reads it directly.
        env: vec![(
            "AWS_ENDPOINT_URL".into(),
            format!("http://127.0.0.1:{}", proxy.port),
        )],
        ..FarmOptions::default()
    })
    .await;
    let prompts = farm.dir.path().join("chaos.txt");
    std::fs::write(
        &prompts,
        (0..TASKS)
            .map(|i| format!("chaos {i}\n"))
            .collect::<String>(),
    )
    .expect("writing prompts");
    let out = farm.cli(&[
        "submit",
        "--model",
        "tiny-random-dit",
        "--prompts-file",
        prompts.to_str().expect("utf-8 path"),
        "--steps",
        "4",
        "--width",
        "32",
        "--height",
        "32",
        "--seed",
        "5",
        "--max-attempts",
        "20",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let job = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    // Each one-time blow lands at a share of the job done, so it hits a
    // job in full flight however fast this machine renders.
    let start = Instant::now();
    let mut dice = Dice(0x0005_eedc_4a05_u64);
    let mut live: Vec<usize> = (0..farm.workers.len()).collect();
    let mut kills = 0;
    let (mut flushed, mut restarted, mut s3_down_since) = (false, false, None::<Instant>);
    let mut s3_outage_done = false;
    let mut last_kill = Instant::now();
    loop {
        let state = job_state(&farm, &job).await;
        let done = state
            .as_ref()
            .and_then(|j| j.counts)
            .map_or(0, |c| c.succeeded) as usize;
        if state.as_ref().is_some_and(|j| j.finished) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the job did not finish under chaos ({done} of {TASKS} done)\n{}",
            farm.logs()
        );
        if last_kill.elapsed() >= Duration::from_secs(2) {
            let victim = live.remove(dice.below(live.len()));
            farm.workers[victim].signal("KILL");
            farm.workers[victim].wait_exit(Duration::from_secs(10));
            farm.start_worker().await;
            live.push(farm.workers.len() - 1);
            kills += 1;
            last_kill = Instant::now();
        }
        if !flushed && done >= TASKS / 5 {
            let _: () = redis::cmd("FLUSHALL")
                .query_async(&mut farm.redis.connection().await)
                .await
                .expect("FLUSHALL");
            flushed = true;
        }
        if !restarted && done >= 2 * TASKS / 5 {
            farm.kill_coordinator();
            farm.start_coordinator().await;
            restarted = true;
        }
        if s3_down_since.is_none() && !s3_outage_done && done >= 3 * TASKS / 5 {
            proxy.set_down(true);
            s3_down_since = Some(Instant::now());
        }
        if s3_down_since.is_some_and(|since| since.elapsed() >= Duration::from_secs(3)) {
            proxy.set_down(false);
            s3_down_since = None;
            s3_outage_done = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxy.set_down(false);

    let pool = farm.db.pool().await;
    let succeeded = count(
        &pool,
        "SELECT count(*) FROM tasks WHERE state = 'succeeded'",
    )
    .await;
    let lost = count(
        &pool,
        "SELECT count(*) FROM tasks t WHERE NOT EXISTS (SELECT 1 FROM outputs o WHERE o.task_id = t.id)",
    )
    .await;
    let duplicated = count(
        &pool,
        "SELECT count(*) FROM (SELECT task_id FROM outputs GROUP BY task_id
                               HAVING count(*) <> 1 OR count(DISTINCT attempt) <> 1) d",
    )
    .await;
    let leased = count(
        &pool,
        "SELECT count(*) FROM tasks WHERE state = 'running' OR lease_expires_at IS NOT NULL",
    )
    .await;
    let orphans = count(
        &pool,
        "SELECT count(*) FROM outputs o JOIN tasks t ON t.id = o.task_id
         WHERE t.state <> 'succeeded' OR o.attempt <> t.attempt",
    )
    .await;
    let retries = count(
        &pool,
        "SELECT coalesce(sum(jsonb_array_length(errors)), 0)::BIGINT FROM tasks",
    )
    .await;
    println!(
        "chaos: tasks {TASKS}, workers killed and restarted {kills}, coordinator restarts 1, \
         redis flushes 1, s3 outages 1 (3 s), retries {retries}, lost {lost}, \
         duplicated {duplicated}, {:.0} s",
        start.elapsed().as_secs_f64()
    );
    assert!(
        flushed && restarted && s3_outage_done,
        "every blow landed before the job finished"
    );
    assert_eq!(
        succeeded,
        TASKS as i64,
        "every task succeeded\n{}",
        farm.logs()
    );
    assert_eq!((lost, duplicated), (0, 0), "lost, duplicated");
    assert_eq!(leased, 0, "nothing is left leased");
    assert_eq!(
        orphans, 0,
        "every output row belongs to its task's succeeded attempt"
    );
    assert!(kills >= 3, "the chaos killed workers");

    // The faults interrupted work: attempts failed or expired, and some
    // tasks were finished by a later attempt than their first.
    let late_finishes = count(
        &pool,
        "SELECT count(*) FROM tasks t JOIN outputs o ON o.task_id = t.id WHERE o.attempt >= 2",
    )
    .await;
    assert!(retries >= 1, "the chaos failed at least one attempt");
    assert!(
        late_finishes >= 1,
        "at least one task was finished by its second attempt or later"
    );

    // The bucket holds exactly the recorded objects and the job's manifest,
    // listed independently: the uploads of attempts killed before they
    // reported are swept once their leases are over.
    let mut recorded: BTreeSet<String> = sqlx::query_scalar("SELECT key FROM outputs")
        .fetch_all(&pool)
        .await
        .expect("output keys")
        .into_iter()
        .collect();
    assert_eq!(recorded.len(), TASKS);
    farm.wait_manifests_written(&[&job]).await;
    let job_id: fresco_core::JobId = job.parse().expect("a job id");
    recorded.insert(fresco_core::keys::manifest_key(
        farm.storage().prefix(),
        job_id,
    ));
    let swept = wait_for(Duration::from_secs(90), || async {
        farm.bucket_keys().await == recorded
    })
    .await;
    let listed = farm.bucket_keys().await;
    assert!(
        swept,
        "the bucket holds exactly the recorded objects: unrecorded {:?}, missing {:?}",
        listed.difference(&recorded).collect::<Vec<_>>(),
        recorded.difference(&listed).collect::<Vec<_>>()
    );

    // Every object decodes and names its own task's prompt and image seed.
    let rows: Vec<(String, String, String, i64, i32)> = sqlx::query_as(
        "SELECT o.key, t.id::TEXT, t.prompt, t.seed, o.idx FROM outputs o JOIN tasks t ON t.id = o.task_id",
    )
    .fetch_all(&pool)
    .await
    .expect("outputs with their tasks");
    let storage = farm.storage();
    for (key, task, prompt, seed, index) in &rows {
        let bytes = read_with_retries(&storage, key).await;
        let (width, height, text) =
            read_png_text(&bytes).unwrap_or_else(|e| panic!("{key} is not a PNG: {e}"));
        assert_eq!((width, height), (32, 32), "{key}");
        let chunk = |name: &str| {
            text.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{key} has no {name} chunk"))
        };
        let image_seed = (*seed as u64).wrapping_add(*index as u64);
        assert_eq!(chunk("prompt"), *prompt, "{key}");
        assert_eq!(chunk("seed"), image_seed.to_string(), "{key}");
        assert_eq!(chunk("fresco_task"), *task, "{key}");
    }
}

/// Polls `done` until it holds or `timeout` passes; whether it held.
async fn wait_for<F, Fut>(timeout: Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    done().await
}
