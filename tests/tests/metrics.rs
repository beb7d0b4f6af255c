//! Prometheus metrics through the real binaries: a farm whose coordinator
//! and workers serve `--metrics-listen`, scraped over HTTP and read with a
//! standard text-format parser while a job waits, while it runs and after
//! it. The queued gauge shows the job's tasks and falls to zero, the
//! completed counter and the dispatch-lag histogram count every task once,
//! each worker's sampling histogram counts the tasks Postgres says it ran,
//! and every name the Grafana dashboard queries is one the farm exports.

use std::collections::BTreeSet;
use std::time::Duration;

use fresco_e2e::{Farm, FarmOptions, free_port, wait_until};
use prometheus_parse::{Sample, Scrape, Value};

const MODEL: &str = "fresco-shapes";
const TASKS: usize = 6;
const STEPS: usize = 2;

/// The body of `http://addr/metrics`, or `None` while it does not answer.
async fn scrape_text(addr: &str) -> Option<String> {
    let response = reqwest::get(format!("http://{addr}/metrics")).await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.text().await.ok()
}

async fn scrape(addr: &str) -> Option<Scrape> {
    let text = scrape_text(addr).await?;
    Some(Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format"))
}

/// The samples named `name` whose labels include every pair of `labels`.
fn find<'a>(
    scrape: &'a Scrape,
    name: &'a str,
    labels: &'a [(&str, &str)],
) -> impl Iterator<Item = &'a Sample> {
    scrape.samples.iter().filter(move |s| {
        s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
    })
}

/// The value of the one gauge or counter `name` with `labels` (none: 0).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    find(scrape, name, labels)
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            ref other => panic!("{name} is not a single value: {other:?}"),
        })
        .sum()
}

/// How many observations the histograms `name` with `labels` hold (their
/// `+Inf` buckets, summed).
fn observations(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    find(scrape, name, labels)
        .map(|s| match &s.value {
            Value::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map_or(0.0, |b| b.count),
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .sum()
}

/// Every `fresco_` sample is named for its type: counters end in
/// `_total`, histograms (all of durations) in `_seconds`, gauges in
/// neither.
fn assert_named_by_type(scrape: &Scrape) {
    for s in scrape
        .samples
        .iter()
        .filter(|s| s.metric.starts_with("fresco_"))
    {
        let name = &s.metric;
        match s.value {
            Value::Counter(_) => assert!(name.ends_with("_total"), "counter {name}"),
            Value::Histogram(_) => assert!(name.ends_with("_seconds"), "histogram {name}"),
            Value::Gauge(_) => assert!(
                !name.ends_with("_total") && !name.ends_with("_seconds"),
                "gauge {name}"
            ),
            // A histogram's _sum and _count lines.
            Value::Untyped(_) => assert!(
                name.ends_with("_seconds_sum") || name.ends_with("_seconds_count"),
                "untyped {name}"
            ),
            Value::Summary(_) => panic!("{name}: summaries are not exported"),
        }
    }
}

/// Every metric name a scrape's text holds, as PromQL sees them
/// (a histogram as its `_bucket`, `_sum` and `_count` series).
fn exported_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// A free loopback address.
fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// A farm with no workers yet, its coordinator serving metrics on
/// `addr` and refreshing its gauges every 200 ms.
async fn farm_with_metrics(addr: &str) -> Farm {
    Farm::start(FarmOptions {
        workers: 0,
        coordinator_args: vec![
            "--metrics-listen".into(),
            addr.into(),
            "--metrics-interval-ms".into(),
            "200".into(),
        ],
        ..FarmOptions::default()
    })
    .await
}

/// Submits a job of `tasks` small fresco-shapes tasks; returns its id.
fn submit(farm: &Farm, tasks: usize) -> String {
    let steps = STEPS.to_string();
    let mut args = vec![
        "--model", MODEL, "--steps", &steps, "--width", "16", "--height", "16",
    ];
    for _ in 0..tasks {
        args.extend(["--prompt", "a red circle"]);
    }
    farm.submit(&args)
}

/// Succeeded tasks Postgres says the worker named `name` ran.
async fn tasks_run_by(farm: &Farm, name: &str) -> f64 {
    let pool = farm.db.pool().await;
    sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM tasks t JOIN workers w ON w.id = t.worker_id
         WHERE w.name = $1 AND t.state = 'succeeded'",
    )
    .bind(name)
    .fetch_one(&pool)
    .await
    .expect("counting a worker's tasks") as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_tasks_show_in_the_coordinators_and_workers_metrics() {
    let coordinator = free_addr();
    let mut farm = farm_with_metrics(&coordinator).await;
    let queued = [("model", MODEL), ("state", "queued")];

    // No worker yet: the job's tasks wait, and the gauge shows them.
    let job = submit(&farm, TASKS);
    wait_until(
        "the queued gauge to show the job's tasks",
        Duration::from_secs(30),
        || async {
            scrape(&coordinator)
                .await
                .is_some_and(|s| value(&s, "fresco_tasks", &queued) == TASKS as f64)
        },
    )
    .await;
    let waiting = scrape(&coordinator).await.expect("a scrape while queued");
    assert_eq!(
        value(&waiting, "fresco_tasks_due", &[("model", MODEL)]),
        TASKS as f64
    );
    assert_eq!(
        value(
            &waiting,
            "fresco_tasks_completed_total",
            &[("model", MODEL)]
        ),
        0.0
    );
    assert_named_by_type(&waiting);

    // Two workers, each serving its own endpoint.
    let workers = [free_addr(), free_addr()];
    for addr in &workers {
        farm.start_worker_with(&["--metrics-listen".into(), addr.clone()])
            .await;
    }
    for addr in &workers {
        let during = scrape(addr).await.expect("a worker's scrape");
        assert!(
            value(&during, "fresco_worker_model_cache_budget_bytes", &[]) > 0.0,
            "the cache budget shows from the start"
        );
        assert_named_by_type(&during);
    }
    farm.wait_finished(&job, Duration::from_secs(120)).await;

    // After: nothing queued, every task counted once.
    wait_until(
        "the queued gauge to fall to zero",
        Duration::from_secs(30),
        || async {
            scrape(&coordinator)
                .await
                .is_some_and(|s| value(&s, "fresco_tasks", &queued) == 0.0)
        },
    )
    .await;
    let after = scrape(&coordinator).await.expect("a scrape after the job");
    let model = [("model", MODEL)];
    assert_eq!(
        value(&after, "fresco_tasks_completed_total", &model),
        TASKS as f64
    );
    assert_eq!(value(&after, "fresco_tasks_failed_total", &model), 0.0);
    assert_eq!(
        value(
            &after,
            "fresco_tasks",
            &[("model", MODEL), ("state", "running")]
        ),
        0.0
    );
    assert_eq!(
        observations(&after, "fresco_coordinator_dispatch_lag_seconds", &model),
        TASKS as f64,
        "one dispatch lag per claim"
    );
    let method = |m| [("method", m)];
    assert_eq!(
        observations(
            &after,
            "fresco_coordinator_request_duration_seconds",
            &method("CompleteTask")
        ),
        TASKS as f64
    );
    assert!(
        observations(
            &after,
            "fresco_coordinator_request_duration_seconds",
            &method("ClaimTask")
        ) >= TASKS as f64
    );
    assert_eq!(
        observations(
            &after,
            "fresco_coordinator_request_duration_seconds",
            &method("SubmitJob")
        ),
        1.0
    );
    assert_named_by_type(&after);

    // Each worker's sampling histogram counts the tasks it ran.
    let mut sampled = 0.0;
    for (n, addr) in workers.iter().enumerate() {
        let s = scrape(addr).await.expect("a worker's scrape after the job");
        let ran = tasks_run_by(&farm, &format!("worker-{n}")).await;
        let tasks = observations(&s, "fresco_worker_sampling_seconds", &model);
        assert_eq!(tasks, ran, "worker-{n}'s sampling count");
        assert_eq!(
            observations(&s, "fresco_worker_step_seconds", &model),
            ran * STEPS as f64
        );
        assert_eq!(
            value(
                &s,
                "fresco_worker_tasks_total",
                &[("model", MODEL), ("outcome", "succeeded")]
            ),
            ran
        );
        let loads = if ran > 0.0 { 1.0 } else { 0.0 };
        assert_eq!(
            observations(&s, "fresco_worker_model_load_seconds", &model),
            loads
        );
        assert_eq!(
            value(&s, "fresco_worker_model_cache_misses_total", &[]),
            loads
        );
        assert_eq!(
            value(&s, "fresco_worker_model_cache_hits_total", &[]),
            (ran - 1.0).max(0.0)
        );
        assert_eq!(
            observations(&s, "fresco_worker_upload_seconds", &model),
            ran
        );
        if ran > 0.0 {
            assert!(value(&s, "fresco_worker_upload_bytes_total", &model) > 0.0);
            assert!(value(&s, "fresco_worker_model_cache_bytes", &[]) > 0.0);
        }
        assert_named_by_type(&s);
        sampled += tasks;
    }
    assert_eq!(sampled, TASKS as f64, "every task sampled once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_queries_only_metrics_the_farm_exports() {
    let coordinator = free_addr();
    let mut farm = farm_with_metrics(&coordinator).await;
    let worker = free_addr();
    farm.start_worker_with(&["--metrics-listen".into(), worker.clone()])
        .await;
    let job = submit(&farm, 2);
    farm.wait_finished(&job, Duration::from_secs(120)).await;
    // The gauges pass has seen the model once its counters show.
    wait_until("the model's gauges", Duration::from_secs(30), || async {
        scrape_text(&coordinator)
            .await
            .is_some_and(|t| t.contains("fresco_coordinator_retries_total{model="))
    })
    .await;
    let mut exported = exported_names(&scrape_text(&coordinator).await.expect("coordinator"));
    exported.extend(exported_names(&scrape_text(&worker).await.expect("worker")));

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/fresco-dashboard.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard")).expect("JSON");
    let mut queried = BTreeSet::new();
    collect_metric_names(&dashboard, &mut queried);
    assert!(queried.len() >= 10, "the dashboard's queries: {queried:?}");
    let missing: Vec<_> = queried.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics the farm does not export: {missing:?}\nexported: {exported:?}"
    );
}

/// Every `fresco_…` name in the PromQL of every `expr` (and template
/// variable query) under `value`.
fn collect_metric_names(value: &serde_json::Value, names: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                if let ("expr" | "definition", serde_json::Value::String(promql)) =
                    (key.as_str(), v)
                {
                    names.extend(metric_names(promql));
                }
                collect_metric_names(v, names);
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                collect_metric_names(v, names);
            }
        }
        _ => {}
    }
}

/// The `fresco_…` identifiers in one PromQL expression.
fn metric_names(promql: &str) -> Vec<String> {
    promql
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("fresco_"))
        .map(str::to_owned)
        .collect()
}
