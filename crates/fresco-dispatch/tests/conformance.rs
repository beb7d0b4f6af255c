//! One conformance suite for both dispatchers: every test runs against
//! Redis (a key prefix of its own on the server `FRESCO_TEST_REDIS_URL`
//! names; skipped, saying so, when it is not set) and the in-process queues
//! of `fresco dev`, and both must order, deduplicate, remove, block and
//! share out work the same way: between concurrent poppers, and between
//! tenants by weight.

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
    tenants_of_equal_weight_take_turns,
    weights_one_to_three_share_pops_one_to_three,
    priority_orders_work_within_a_tenant_not_across_tenants,
    a_tenant_that_comes_back_from_idle_earns_no_credit,
    a_later_tenant_is_served_before_the_earlier_backlog_ends,
    a_throttled_tenant_is_skipped_until_its_throttle_ends,
    length_and_removal_span_every_tenant_of_a_model,
    rescore_moves_queued_tasks_and_queues_nothing_new,
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
    task_of("t", model, priority, seq)
}

fn task_of(tenant: &str, model: &str, priority: i32, seq: i64) -> QueuedTask {
    QueuedTask {
        id: TaskId::new(),
        model: model.into(),
        tenant: tenant.into(),
        priority,
        seq,
    }
}

/// `count` tasks of `tenant` for model "m", from submission `first_seq`.
fn tasks_of(tenant: &str, count: i64, first_seq: i64) -> Vec<QueuedTask> {
    (0..count)
        .map(|i| task_of(tenant, "m", 0, first_seq + i))
        .collect()
}

/// The tenants of the next `n` pops of model "m" (fewer when it runs dry).
async fn turns(dispatch: &dyn Dispatch, n: usize) -> Vec<String> {
    let mut served = Vec::with_capacity(n);
    for _ in 0..n {
        match dispatch.pop(&models(&["m"]), SHORT).await.expect("pop") {
            Some(popped) => served.push(popped.tenant),
            None => break,
        }
    }
    served
}

fn count(served: &[String], tenant: &str) -> usize {
    served.iter().filter(|t| *t == tenant).count()
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

async fn tenants_of_equal_weight_take_turns(dispatch: Arc<dyn Dispatch>) {
    dispatch.push(&tasks_of("a", 300, 0)).await.expect("push");
    dispatch
        .push(&tasks_of("b", 300, 1_000))
        .await
        .expect("push");
    let served = turns(&*dispatch, 400).await;
    assert_eq!((count(&served, "a"), count(&served, "b")), (200, 200));
    for pair in served.chunks(2) {
        assert_eq!(pair, ["a", "b"], "turn by turn");
    }
}

async fn weights_one_to_three_share_pops_one_to_three(dispatch: Arc<dyn Dispatch>) {
    dispatch
        .set_weights(&[("b".to_owned(), 3), ("unused".to_owned(), 7)])
        .await
        .expect("weights");
    dispatch.push(&tasks_of("a", 500, 0)).await.expect("push");
    dispatch
        .push(&tasks_of("b", 500, 1_000))
        .await
        .expect("push");
    let served = turns(&*dispatch, 400).await;
    assert_eq!((count(&served, "a"), count(&served, "b")), (100, 300));
    for window in served.chunks(4) {
        assert_eq!(
            count(window, "a"),
            1,
            "one of a's in every four: {window:?}"
        );
    }
    // Weights published again replace the old ones: b is back to 1.
    dispatch.set_weights(&[]).await.expect("weights");
    let served = turns(&*dispatch, 100).await;
    assert_eq!((count(&served, "a"), count(&served, "b")), (50, 50));
}

async fn priority_orders_work_within_a_tenant_not_across_tenants(dispatch: Arc<dyn Dispatch>) {
    let a_low = task_of("a", "m", 0, 1);
    let a_high = task_of("a", "m", 9, 2);
    let a_mid = task_of("a", "m", 5, 3);
    let b_low = task_of("b", "m", -5, 4);
    let b_high = task_of("b", "m", 1, 5);
    dispatch
        .push(&[a_low.clone(), a_high.clone(), a_mid.clone()])
        .await
        .expect("push");
    dispatch
        .push(&[b_low.clone(), b_high.clone()])
        .await
        .expect("push");
    // Turns alternate whatever the priorities; each tenant's own work goes
    // highest priority first.
    assert_eq!(
        pop_all(&*dispatch, &["m"]).await,
        [a_high.id, b_high.id, a_mid.id, b_low.id, a_low.id]
    );
}

async fn a_tenant_that_comes_back_from_idle_earns_no_credit(dispatch: Arc<dyn Dispatch>) {
    dispatch.push(&tasks_of("a", 1_000, 0)).await.expect("push");
    dispatch
        .push(&tasks_of("b", 2, 10_000))
        .await
        .expect("push");
    let first = turns(&*dispatch, 4).await;
    assert_eq!(count(&first, "b"), 2);
    // b has nothing queued while a takes a hundred pops alone.
    assert_eq!(turns(&*dispatch, 100).await, vec!["a"; 100]);
    // Back with work, b shares 1:1 from now on instead of being owed the
    // turns it had nothing for.
    dispatch
        .push(&tasks_of("b", 100, 20_000))
        .await
        .expect("push");
    let after = turns(&*dispatch, 20).await;
    assert_eq!(
        (count(&after, "a"), count(&after, "b")),
        (10, 10),
        "{after:?}"
    );
}

async fn a_later_tenant_is_served_before_the_earlier_backlog_ends(dispatch: Arc<dyn Dispatch>) {
    dispatch
        .push(&tasks_of("a", 10_000, 0))
        .await
        .expect("push");
    assert_eq!(turns(&*dispatch, 50).await, vec!["a"; 50]);
    dispatch
        .push(&tasks_of("b", 20, 20_000))
        .await
        .expect("push");
    let mut a_before_b_done = 0;
    let mut b_done = 0;
    while b_done < 20 {
        let popped = dispatch
            .pop(&models(&["m"]), SHORT)
            .await
            .expect("pop")
            .expect("work is queued");
        match popped.tenant.as_str() {
            "b" => b_done += 1,
            _ => a_before_b_done += 1,
        }
    }
    // The fair share: one of a's per one of b's.
    assert_eq!(a_before_b_done, 19);
    assert_eq!(dispatch.len("m").await.expect("len"), 10_000 - 50 - 19);
}

async fn a_throttled_tenant_is_skipped_until_its_throttle_ends(dispatch: Arc<dyn Dispatch>) {
    dispatch.push(&tasks_of("a", 100, 0)).await.expect("push");
    dispatch
        .push(&tasks_of("b", 100, 1_000))
        .await
        .expect("push");
    let throttle = Duration::from_millis(800);
    let throttled_at = std::time::Instant::now();
    dispatch
        .throttle("m", "b", throttle)
        .await
        .expect("throttle");
    // A shorter throttle set later does not cut the first one short.
    dispatch
        .throttle("m", "b", Duration::from_millis(1))
        .await
        .expect("throttle");
    // A throttle of another model leaves this one alone.
    dispatch
        .throttle("other", "a", Duration::from_secs(60))
        .await
        .expect("throttle");
    let mut during = Vec::new();
    while throttled_at.elapsed() < throttle / 2 {
        during.extend(turns(&*dispatch, 1).await);
    }
    assert!(!during.is_empty());
    assert_eq!(count(&during, "b"), 0, "b is skipped: {during:?}");

    // With only b left, a pop waits out the throttle and then takes b's.
    let rest: Vec<QueuedTask> = tasks_of("a", 100, 0);
    dispatch.remove(&rest).await.expect("remove a's");
    let popped = dispatch
        .pop(&models(&["m"]), Duration::from_secs(10))
        .await
        .expect("pop")
        .expect("b's task once the throttle ends");
    assert_eq!(popped.tenant, "b");
    assert!(
        throttled_at.elapsed() >= throttle,
        "not before the throttle ended"
    );
}

async fn length_and_removal_span_every_tenant_of_a_model(dispatch: Arc<dyn Dispatch>) {
    let a = tasks_of("a", 5, 0);
    let b = tasks_of("b", 3, 100);
    let other = task_of("a", "n", 0, 200);
    dispatch.push(&a).await.expect("push");
    dispatch.push(&b).await.expect("push");
    dispatch
        .push(std::slice::from_ref(&other))
        .await
        .expect("push");
    assert_eq!(dispatch.len("m").await.expect("len"), 8);
    assert_eq!(dispatch.len("n").await.expect("len"), 1);
    // Removing all of b's and some of a's, in one call.
    let removed: Vec<QueuedTask> = b.iter().chain(&a[..2]).cloned().collect();
    dispatch.remove(&removed).await.expect("remove");
    assert_eq!(dispatch.len("m").await.expect("len"), 3);
    let left: Vec<TaskId> = a[2..].iter().map(|t| t.id).collect();
    assert_eq!(pop_all(&*dispatch, &["m"]).await, left);
    assert_eq!(dispatch.len("n").await.expect("len"), 1);
}

async fn rescore_moves_queued_tasks_and_queues_nothing_new(dispatch: Arc<dyn Dispatch>) {
    let first = task("m", 0, 1);
    let second = task("m", 0, 2);
    let third = task("m", 0, 3);
    dispatch
        .push(&[first.clone(), second.clone(), third.clone()])
        .await
        .expect("push");
    let raised = QueuedTask {
        priority: 7,
        ..third.clone()
    };
    let never_queued = task("m", 9, 4);
    dispatch
        .rescore(&[raised, never_queued])
        .await
        .expect("rescore");
    assert_eq!(dispatch.len("m").await.expect("len"), 3);
    assert_eq!(
        pop_all(&*dispatch, &["m"]).await,
        [third.id, first.id, second.id]
    );
}
