//! Fair sharing of one model's queue between tenants, by stride
//! scheduling, as the in-process dispatch runs it (the Redis scripts in
//! `lua/` run the same rules, step for step):
//!
//! - each tenant with queued ids has a *pass*; a pop serves the tenant with
//!   the lowest pass (ties: the smaller name), takes its first id (higher
//!   priority, then submission order), and advances its pass by its
//!   [`stride`], `STRIDE_SCALE / weight`: over many pops each tenant with
//!   work gets a share in proportion to its weight;
//! - the model's *clock* is the pass last served; a tenant whose queue was
//!   empty and fills again starts at `max(its pass, clock)`, so time spent
//!   idle earns no credit, and a tenant served late (skipped while
//!   throttled) is served from the clock on, never with a backlog of
//!   credit;
//! - a throttled tenant is skipped (its ids and pass stay) until its
//!   throttle ends.
//!
//! Passes are integers, so Redis (which keeps them as sorted-set scores)
//! and this module compute the same order exactly.

use std::collections::{BTreeSet, HashMap};

use fresco_core::{QueuedTask, TaskId};

/// The pass a tenant of weight 1 advances by per pop. 720,720 is the least
/// common multiple of 1..=16, so small weights divide it exactly; larger
/// ones round their stride down (by under 1.4% at the largest weight).
pub const STRIDE_SCALE: u64 = 720_720;

/// The weight of a tenant no weight was published for.
pub const DEFAULT_WEIGHT: u32 = 1;

/// The largest weight (the `tenants.weight` column's bound); larger values
/// count as this.
pub const MAX_WEIGHT: u32 = 10_000;

/// How far a tenant of `weight` advances per pop.
pub fn stride(weight: u32) -> u64 {
    STRIDE_SCALE / u64::from(weight.clamp(1, MAX_WEIGHT))
}

/// A task's place in its tenant's queue: smaller pops first.
pub(crate) type Place = (i64, i64, TaskId);

pub(crate) fn place(task: &QueuedTask) -> Place {
    (-i64::from(task.priority), task.seq, task.id)
}

/// One tenant's queued ids of a model and its pass.
#[derive(Debug, Default)]
struct TenantQueue {
    tasks: BTreeSet<Place>,
    pass: u64,
}

/// One model's queue: a queue per tenant and the model's clock.
#[derive(Debug, Default)]
pub struct ModelQueue {
    tenants: HashMap<String, TenantQueue>,
    clock: u64,
}

impl ModelQueue {
    /// Queues `at` for `tenant`; a tenant whose queue was empty starts at
    /// `max(its pass, clock)`.
    pub(crate) fn push(&mut self, tenant: &str, at: Place) {
        let clock = self.clock;
        let queue = self.tenants.entry(tenant.to_owned()).or_default();
        if queue.tasks.is_empty() {
            queue.pass = queue.pass.max(clock);
        }
        queue.tasks.insert(at);
    }

    /// Takes `at` out of `tenant`'s queue, if it is there.
    pub(crate) fn remove(&mut self, tenant: &str, at: &Place) {
        if let Some(queue) = self.tenants.get_mut(tenant) {
            queue.tasks.remove(at);
        }
    }

    /// How many ids wait, over every tenant.
    pub fn len(&self) -> usize {
        self.tenants.values().map(|q| q.tasks.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Serves the tenant with the lowest pass that has ids and is not
    /// `throttled`: its first id, and the tenant.
    pub(crate) fn pop(
        &mut self,
        weight: impl Fn(&str) -> u32,
        throttled: impl Fn(&str) -> bool,
    ) -> Option<(TaskId, String)> {
        let (tenant, queue) = self
            .tenants
            .iter_mut()
            .filter(|(tenant, queue)| !queue.tasks.is_empty() && !throttled(tenant))
            .min_by(|(a, qa), (b, qb)| (qa.pass, a).cmp(&(qb.pass, b)))?;
        let (_, _, task) = queue.tasks.pop_first()?;
        let served = queue.pass.max(self.clock);
        queue.pass = served + stride(weight(tenant));
        self.clock = served;
        Some((task, tenant.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(tenant: &str, priority: i32, seq: i64) -> QueuedTask {
        QueuedTask {
            id: TaskId::new(),
            model: "m".into(),
            tenant: tenant.into(),
            priority,
            seq,
        }
    }

    fn fill(queue: &mut ModelQueue, tenant: &str, count: i64, first_seq: i64) -> Vec<TaskId> {
        (0..count)
            .map(|i| {
                let t = task(tenant, 0, first_seq + i);
                queue.push(tenant, place(&t));
                t.id
            })
            .collect()
    }

    /// The tenants of the next `n` pops.
    fn served(queue: &mut ModelQueue, weights: &[(&str, u32)], n: usize) -> Vec<String> {
        let weight = |t: &str| {
            weights
                .iter()
                .find(|(name, _)| *name == t)
                .map_or(DEFAULT_WEIGHT, |(_, w)| *w)
        };
        (0..n)
            .map_while(|_| queue.pop(weight, |_| false).map(|(_, tenant)| tenant))
            .collect()
    }

    fn count(served: &[String], tenant: &str) -> usize {
        served.iter().filter(|t| *t == tenant).count()
    }

    #[test]
    fn equal_weights_alternate() {
        let mut queue = ModelQueue::default();
        fill(&mut queue, "a", 100, 0);
        fill(&mut queue, "b", 100, 1_000);
        let order = served(&mut queue, &[], 10);
        assert_eq!(order, ["a", "b", "a", "b", "a", "b", "a", "b", "a", "b"]);
    }

    #[test]
    fn weights_one_to_three_share_one_to_three() {
        let mut queue = ModelQueue::default();
        fill(&mut queue, "a", 1_000, 0);
        fill(&mut queue, "b", 1_000, 10_000);
        let order = served(&mut queue, &[("b", 3)], 400);
        assert_eq!((count(&order, "a"), count(&order, "b")), (100, 300));
        // And in every window of four pops, one of a's.
        for window in order.chunks(4) {
            assert_eq!(count(window, "a"), 1, "{window:?}");
        }
    }

    #[test]
    fn a_later_tenant_is_served_at_once_not_after_the_backlog() {
        let mut queue = ModelQueue::default();
        fill(&mut queue, "a", 10_000, 0);
        assert_eq!(served(&mut queue, &[], 500), vec!["a"; 500]);
        fill(&mut queue, "b", 20, 20_000);
        let order = served(&mut queue, &[], 40);
        assert_eq!(count(&order, "b"), 20);
        assert_eq!(count(&order, "a"), 20);
    }

    #[test]
    fn priority_orders_work_within_a_tenant_only() {
        let mut queue = ModelQueue::default();
        let low = task("a", 0, 1);
        let high = task("a", 9, 2);
        let b_low = task("b", -5, 3);
        for t in [&low, &high, &b_low] {
            queue.push(&t.tenant, place(t));
        }
        let order: Vec<TaskId> = (0..3)
            .filter_map(|_| queue.pop(|_| 1, |_| false).map(|(id, _)| id))
            .collect();
        // a's high-priority task first, then b's turn (its priority does not
        // count against a's), then a's low one.
        assert_eq!(order, [high.id, b_low.id, low.id]);
    }

    #[test]
    fn an_idle_tenant_earns_no_credit() {
        let mut queue = ModelQueue::default();
        fill(&mut queue, "a", 1_000, 0);
        fill(&mut queue, "b", 2, 10_000);
        // b's two tasks go in the first four pops, then a runs alone.
        let first = served(&mut queue, &[], 4);
        assert_eq!(count(&first, "b"), 2);
        assert_eq!(served(&mut queue, &[], 100), vec!["a"; 100]);
        // b comes back: it shares from now on, 1:1, rather than being owed
        // the hundred pops it had no work for.
        fill(&mut queue, "b", 100, 20_000);
        let after = served(&mut queue, &[], 20);
        assert_eq!(count(&after, "b"), 10, "{after:?}");
    }

    #[test]
    fn a_throttled_tenant_is_skipped_and_owed_nothing_after() {
        let mut queue = ModelQueue::default();
        fill(&mut queue, "a", 100, 0);
        fill(&mut queue, "b", 100, 1_000);
        for _ in 0..10 {
            let (_, tenant) = queue.pop(|_| 1, |t| t == "b").expect("a's task");
            assert_eq!(tenant, "a");
        }
        let after = served(&mut queue, &[], 10);
        assert_eq!(count(&after, "b"), 5, "{after:?}");
    }

    #[test]
    fn strides_follow_the_weight_within_its_bounds() {
        assert_eq!(stride(1), STRIDE_SCALE);
        assert_eq!(stride(3), STRIDE_SCALE / 3);
        assert_eq!(stride(0), STRIDE_SCALE, "no weight counts as 1");
        assert_eq!(stride(1_000_000), stride(MAX_WEIGHT));
    }
}
