//! One trace follows a task across processes: a farm whose coordinator and
//! worker export over OTLP (`--otlp-endpoint`) to a receiver in the test
//! (`fresco_e2e::otlp`, the protocol's own generated server). The job's
//! trace, rooted at the coordinator's `SubmitJob` span, holds the
//! coordinator's claim, the worker's run of the task with its sampling
//! span and one span per sampling step, its upload, and the coordinator's
//! `CompleteTask`, which is the child of the worker's span that reported
//! it: the trace context travelled with the task through Postgres, the
//! claim's answer and the worker's gRPC metadata.

use std::time::Duration;

use fresco_e2e::otlp::{Collector, ReceivedSpan};
use fresco_e2e::{Farm, FarmOptions, wait_until};

const STEPS: usize = 3;

/// The spans of `trace`.
fn in_trace(spans: &[ReceivedSpan], trace: &[u8]) -> Vec<ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.trace_id == trace)
        .cloned()
        .collect()
}

fn named<'a>(spans: &'a [ReceivedSpan], service: &str, name: &str) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.service == service && s.name == name)
        .collect()
}

/// Whether the trace holds everything a task's life leaves in it.
fn complete(trace: &[ReceivedSpan]) -> bool {
    named(trace, "fresco-coordinator", "task claimed").len() == 1
        && named(trace, "fresco-worker", "run task").len() == 1
        && named(trace, "fresco-worker", "sample").len() == 1
        && named(trace, "fresco-worker", "sampling step").len() == STEPS
        && named(trace, "fresco-worker", "upload").len() == 1
        && named(trace, "fresco-coordinator", "CompleteTask").len() == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_follows_a_task_from_submission_to_completion() {
    let collector = Collector::start().await;
    let otlp = vec!["--otlp-endpoint".to_owned(), collector.endpoint.clone()];
    let farm = Farm::start(FarmOptions {
        workers: 1,
        coordinator_args: otlp.clone(),
        worker_args: otlp,
        env: vec![("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into())],
        ..FarmOptions::default()
    })
    .await;
    let steps = STEPS.to_string();
    let job = farm.submit(&[
        "--model",
        "fresco-shapes",
        "--prompt",
        "a red circle",
        "--steps",
        &steps,
        "--width",
        "16",
        "--height",
        "16",
    ]);
    let done = farm.wait_finished(&job, Duration::from_secs(60)).await;
    assert_eq!(done["counts"]["succeeded"], 1, "{done}");

    let mut trace = Vec::new();
    wait_until("the task's whole trace", Duration::from_secs(30), || {
        let spans = collector.spans();
        let submits = named(&spans, "fresco-coordinator", "SubmitJob")
            .into_iter()
            .map(|s| s.trace_id.clone())
            .collect::<Vec<_>>();
        trace = submits
            .first()
            .map(|id| in_trace(&spans, id))
            .unwrap_or_default();
        let whole = complete(&trace);
        async move { whole }
    })
    .await;

    let submit = named(&trace, "fresco-coordinator", "SubmitJob")[0];
    assert!(
        submit.parent_span_id.is_empty(),
        "the submission is the root"
    );
    let run = named(&trace, "fresco-worker", "run task")[0];
    assert_eq!(
        run.parent_span_id, submit.span_id,
        "the worker's run joins the job's trace"
    );
    assert_eq!(run.attribute("job_id"), Some(job.as_str()));
    let claimed = named(&trace, "fresco-coordinator", "task claimed")[0];
    assert_eq!(claimed.parent_span_id, submit.span_id);
    let sample = named(&trace, "fresco-worker", "sample")[0];
    assert_eq!(sample.parent_span_id, run.span_id);
    for step in named(&trace, "fresco-worker", "sampling step") {
        assert_eq!(step.parent_span_id, sample.span_id, "{step:?}");
    }
    let mut numbers: Vec<&str> = named(&trace, "fresco-worker", "sampling step")
        .iter()
        .filter_map(|s| s.attribute("step"))
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, ["1", "2", "3"]);
    let upload = named(&trace, "fresco-worker", "upload")[0];
    assert_eq!(upload.parent_span_id, run.span_id);
    let completed = named(&trace, "fresco-coordinator", "CompleteTask")[0];
    assert_eq!(
        completed.parent_span_id, run.span_id,
        "the coordinator's CompleteTask is the child of the worker's span that called it"
    );
}
