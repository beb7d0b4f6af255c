//! What only the Redis dispatcher can show: that its Lua scripts run the
//! same fair-share rules as the in-process queues (the same pops, id for
//! id, over a long mixed run), that its keys are the documented ones, and
//! that a push puts back a tenant whose place in the active set Redis lost.
//! Skipped, saying so, when `FRESCO_TEST_REDIS_URL` is not set.

use std::time::Duration;

use fresco_core::{QueuedTask, TaskId};
use fresco_dispatch::{Dispatch, MemoryDispatch, RedisDispatch};

mod support;

async fn redis(test: &str) -> Option<(RedisDispatch, redis::aio::MultiplexedConnection, String)> {
    let (url, prefix) = support::redis_with_own_prefix(test)?;
    let dispatch = RedisDispatch::connect(&url, &prefix)
        .await
        .expect("connecting to redis");
    let raw = redis::Client::open(url.as_str())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connecting to redis");
    Some((dispatch, raw, prefix))
}

fn task(tenant: &str, model: &str, priority: i32, seq: i64) -> QueuedTask {
    QueuedTask {
        id: TaskId::new(),
        model: model.into(),
        tenant: tenant.into(),
        priority,
        seq,
    }
}

/// A small deterministic generator, so a failing run can be replayed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

const NOW: Duration = Duration::ZERO;

#[tokio::test]
async fn redis_and_the_in_process_queues_pop_the_same_ids_in_the_same_order() {
    let Some((redis, _, _)) = redis("same_order").await else {
        return;
    };
    let memory = MemoryDispatch::new();
    let weights = vec![("b".to_owned(), 3), ("c".to_owned(), 7)];
    redis.set_weights(&weights).await.expect("weights");
    memory.set_weights(&weights).await.expect("weights");
    let tenants = ["a", "b", "c", "d"];
    let served = vec!["m".to_owned(), "n".to_owned()];
    let mut rng = Lcg(23);
    let mut seq = 0;
    let mut popped = 0;
    for round in 0..300 {
        // Pushes in bursts, now and then, so tenants go idle and come back.
        if round % 7 == 0 {
            let tenant = tenants[rng.below(4) as usize];
            let model = if rng.below(3) == 0 { "n" } else { "m" };
            let burst: Vec<QueuedTask> = (0..1 + rng.below(15))
                .map(|_| {
                    seq += 1;
                    task(tenant, model, rng.below(3) as i32 - 1, seq)
                })
                .collect();
            redis.push(&burst).await.expect("push");
            memory.push(&burst).await.expect("push");
        }
        let order = if round % 2 == 0 {
            served.clone()
        } else {
            served.iter().rev().cloned().collect()
        };
        let from_redis = redis.pop(&order, NOW).await.expect("pop");
        let from_memory = memory.pop(&order, NOW).await.expect("pop");
        assert_eq!(from_redis, from_memory, "pop {round}");
        popped += usize::from(from_redis.is_some());
    }
    assert!(popped > 100, "the run popped {popped} ids");
    for model in ["m", "n"] {
        assert_eq!(
            redis.len(model).await.expect("len"),
            memory.len(model).await.expect("len")
        );
    }
}

#[tokio::test]
async fn the_keys_are_the_documented_ones() {
    let Some((dispatch, mut raw, prefix)) = redis("keys").await else {
        return;
    };
    dispatch
        .set_weights(&[("acme".to_owned(), 2)])
        .await
        .expect("weights");
    dispatch
        .push(&[task("acme", "m", 0, 1), task("acme", "m", 0, 2)])
        .await
        .expect("push");
    dispatch
        .push(&[task("zeta", "m", 0, 3)])
        .await
        .expect("push");
    dispatch
        .throttle("m", "zeta", Duration::from_secs(60))
        .await
        .expect("throttle");
    let popped = dispatch
        .pop(&["m".to_owned()], NOW)
        .await
        .expect("pop")
        .expect("acme's task");
    assert_eq!(popped.tenant, "acme");
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut raw)
        .await
        .expect("KEYS");
    keys.sort();
    let expect: Vec<String> = [
        "active:m",
        "clock:m",
        "queue:m:acme",
        "queue:m:zeta",
        "throttled:m",
        "weights",
    ]
    .iter()
    .map(|k| format!("{prefix}:{k}"))
    .collect();
    assert_eq!(keys, expect);
    let active: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(format!("{prefix}:active:m"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut raw)
        .await
        .expect("ZRANGE");
    let half = fresco_dispatch::fair::stride(2) as f64;
    assert_eq!(
        active,
        [("zeta".to_owned(), 0.0), ("acme".to_owned(), half)],
        "acme advanced by the stride of weight 2"
    );
    // acme's queue empties: it leaves the active set, its pass saved.
    dispatch.pop(&["m".to_owned()], NOW).await.expect("pop");
    let saved: Option<String> = redis::cmd("HGET")
        .arg(format!("{prefix}:passes:m"))
        .arg("acme")
        .query_async(&mut raw)
        .await
        .expect("HGET");
    assert_eq!(
        saved,
        Some(format!("{}", 2 * fresco_dispatch::fair::stride(2)))
    );
}

#[tokio::test]
async fn a_push_again_restores_a_tenant_whose_place_redis_lost() {
    let Some((dispatch, mut raw, prefix)) = redis("heal").await else {
        return;
    };
    let tasks = vec![task("acme", "m", 0, 1), task("acme", "m", 0, 2)];
    dispatch.push(&tasks).await.expect("push");
    // Redis loses the active set (evicted, say) but keeps the queue.
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{prefix}:active:m"))
        .query_async(&mut raw)
        .await
        .expect("DEL");
    // The length counts what pops can reach: nothing, so the reconciler
    // sees fewer ids than Postgres holds and pushes them again.
    assert_eq!(dispatch.len("m").await.expect("len"), 0);
    assert_eq!(
        dispatch.pop(&["m".to_owned()], NOW).await.expect("pop"),
        None
    );
    dispatch.push(&tasks).await.expect("push again");
    assert_eq!(dispatch.len("m").await.expect("len"), 2);
    let first = dispatch
        .pop(&["m".to_owned()], NOW)
        .await
        .expect("pop")
        .expect("a task");
    assert_eq!(first.task, tasks[0].id);
}
