//! One conformance suite for both dispatchers: every test runs against
//! Redis (a key prefix of its own on the server `FRESCO_TEST_REDIS_URL`
//! names; skipped, saying so, when it is not set) and the in-process queues
//! of `fresco dev`, and both must order, deduplicate, remove, block and
//! share out work the same way.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use fresco_core::{QueuedTask, TaskId};
use fresco_dispatch::{Dispatch, RedisDispatch};

mod support;

/// Runs each listed test against both dispatchers.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn redis() {
                let Some(dispatch) = super::redis_dispatch(stringify!($name)).await else {
                    return;
                };
                super::$name(dispatch).await;
            }

            #[tokio::test]
            async fn in_process() {
                super::$name(std::sync::Arc::new(fresco_dispatch::MemoryDispatch::new())).await;
            }
        }
    )*};
}

conformance!(
    pops_by_priority_then_submission_order,
    pops_the_first_non_empty_queue_in_the_order_given,
    a_task_pushed_twice_is_queued_once,
    removed_tasks_are_never_popped,
    an_empty_pop_times_out_with_nothing,
    a_waiting_pop_takes_a_later_push,
    concurrent_pops_share_out_every_task_once,
);

/// A Redis dispatcher under a key prefix of the test's own; `None` when no
/// Redis server is configured.
async fn redis_dispatch(test: &str) -> Option<Arc<dyn Dispatch>> {
    let (url, prefix) = support::redis_with_own_prefix(test)?;
    Some(Arc::new(
        RedisDispatch::connect(&url, &prefix)
            .await
            .expect("connecting to redis"),
    ))
}

fn task(model: &str, priority: i32, seq: i64) -> QueuedTask {
    QueuedTask {
        id: TaskId::new(),
        model: model.into(),
        priority,
        seq,
    }
}

fn models(names: &[&str]) -> Vec<String> {
    names.iter().map(|m| (*m).to_owned()).collect()
}

const SHORT: Duration = Duration::from_millis(200);

/// Pops until a pop waits `SHORT` for nothing.
async fn pop_all(dispatch: &dyn Dispatch, names: &[&str]) -> Vec<TaskId> {
    pop_until_idle(dispatch, names, SHORT).await
}

async fn pop_until_idle(dispatch: &dyn Dispatch, names: &[&str], idle: Duration) -> Vec<TaskId> {
    let mut popped = Vec::new();
    while let Some(p) = dispatch.pop(&models(names), idle).await.expect("pop") {
        popped.push(p.task);
    }
    popped
}

async fn pops_by_priority_then_submission_order(dispatch: Arc<dyn Dispatch>) {
    let low_old = task("m", 0, 1);
    let low_new = task("m", 0, 2);
    let high_new = task("m", 5, 3);
    let negative = task("m", -3, 0);
    dispatch
        .push(&[low_new.clone(), negative.clone(), high_new.clone()])
        .await
        .expect("push");
    dispatch
        .push(std::slice::from_ref(&low_old))
        .await
        .expect("push");
    assert_eq!(
        pop_all(&*dispatch, &["m"]).await,
        [high_new.id, low_old.id, low_new.id, negative.id]
    );
}

async fn pops_the_first_non_empty_queue_in_the_order_given(dispatch: Arc<dyn Dispatch>) {
    let a = task("a", 0, 1);
    let b = task("b", 9, 2);
    dispatch.push(&[a.clone(), b.clone()]).await.expect("push");
    let first = dispatch
        .pop(&models(&["empty", "a", "b"]), SHORT)
        .await
        .expect("pop")
        .expect("a task");
    assert_eq!((first.task, first.model.as_str()), (a.id, "a"));
    let second = dispatch
        .pop(&models(&["a", "b"]), SHORT)
        .await
        .expect("pop")
        .expect("a task");
    assert_eq!((second.task, second.model.as_str()), (b.id, "b"));
    assert_eq!(
        dispatch.pop(&models(&["c"]), SHORT).await.expect("pop"),
        None
    );
}

async fn a_task_pushed_twice_is_queued_once(dispatch: Arc<dyn Dispatch>) {
    let t = task("m", 0, 1);
    dispatch.push(&[t.clone(), t.clone()]).await.expect("push");
    dispatch.push(std::slice::from_ref(&t)).await.expect("push");
    assert_eq!(dispatch.len("m").await.expect("len"), 1);
    assert_eq!(pop_all(&*dispatch, &["m"]).await, [t.id]);
    assert_eq!(dispatch.len("m").await.expect("len"), 0);
    // Once popped, the same id can be queued again (a requeue).
    dispatch.push(std::slice::from_ref(&t)).await.expect("push");
    assert_eq!(pop_all(&*dispatch, &["m"]).await, [t.id]);
}

async fn removed_tasks_are_never_popped(dispatch: Arc<dyn Dispatch>) {
    let tasks: Vec<QueuedTask> = (0..10).map(|i| task("m", 0, i)).collect();
    dispatch.push(&tasks).await.expect("push");
    let removed: Vec<QueuedTask> = tasks.iter().step_by(2).cloned().collect();
    dispatch.remove(&removed).await.expect("remove");
    // Removing what is not queued is not an error.
    dispatch.remove(&removed).await.expect("remove again");
    assert_eq!(dispatch.len("m").await.expect("len"), 5);
    let kept: Vec<TaskId> = tasks.iter().skip(1).step_by(2).map(|t| t.id).collect();
    assert_eq!(pop_all(&*dispatch, &["m"]).await, kept);
}

async fn an_empty_pop_times_out_with_nothing(dispatch: Arc<dyn Dispatch>) {
    assert_eq!(
        dispatch.pop(&models(&["m"]), SHORT).await.expect("pop"),
        None
    );
    assert_eq!(dispatch.pop(&[], SHORT).await.expect("pop"), None);
    assert_eq!(dispatch.len("never-used").await.expect("len"), 0);
}

async fn a_waiting_pop_takes_a_later_push(dispatch: Arc<dyn Dispatch>) {
    let waiter = {
        let dispatch = dispatch.clone();
        tokio::spawn(async move { dispatch.pop(&models(&["m"]), Duration::from_secs(20)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = task("m", 0, 1);
    dispatch.push(std::slice::from_ref(&t)).await.expect("push");
    let popped = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiting pop returned")
        .expect("join")
        .expect("pop");
    assert_eq!(popped.map(|p| p.task), Some(t.id));
}

async fn concurrent_pops_share_out_every_task_once(dispatch: Arc<dyn Dispatch>) {
    let tasks: Vec<QueuedTask> = (0..300)
        .map(|i| task(if i % 3 == 0 { "a" } else { "b" }, i as i32 % 4, i))
        .collect();
    let poppers: Vec<_> = (0..4)
        .map(|_| {
            let dispatch = dispatch.clone();
            tokio::spawn(async move {
                pop_until_idle(&*dispatch, &["a", "b"], Duration::from_secs(1)).await
            })
        })
        .collect();
    for chunk in tasks.chunks(50) {
        dispatch.push(chunk).await.expect("push");
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for popper in poppers {
        for id in popper.await.expect("join") {
            total += 1;
            seen.insert(id);
        }
    }
    assert_eq!(total, tasks.len(), "every task popped exactly once");
    assert_eq!(seen, tasks.iter().map(|t| t.id).collect::<HashSet<_>>());
}
