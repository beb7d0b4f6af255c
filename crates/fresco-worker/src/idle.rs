//! While a worker has nothing to run it pings the coordinator once a
//! heartbeat interval: that keeps it live for the farm (a job submitted
//! after a quiet hour is not told that no live worker serves its model),
//! and the answer tells an idle worker that it is drained, so it exits
//! without waiting for a task to arrive.

use std::time::Duration;

use fresco_proto::v1 as pb;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::task::TaskContext;

/// When the worker last told the coordinator it is alive.
pub struct IdlePing {
    every: Duration,
    last: Instant,
}

impl IdlePing {
    /// Pings at most once per `every` (the heartbeat interval).
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: Instant::now(),
        }
    }

    /// The worker just spoke to the coordinator (a claim): no ping is due.
    pub fn heard(&mut self) {
        self.last = Instant::now();
    }

    /// Pings when one is due; a drain answer cancels `ctx.drain`. A ping
    /// that fails is logged and tried again at the next interval.
    pub async fn ping_if_due(&mut self, ctx: &TaskContext) {
        if self.last.elapsed() < self.every {
            return;
        }
        self.last = Instant::now();
        let request = pb::PingRequest {
            worker_id: ctx.worker_id.clone(),
            loaded_models: ctx.cache.loaded_models(),
        };
        match ctx.client.ping(request).await {
            Ok(answer) if answer.drain && !ctx.drain.is_cancelled() => {
                info!(worker_id = %ctx.worker_id, "the coordinator drains this idle worker: exiting");
                ctx.drain.cancel();
            }
            Ok(_) => {}
            Err(status) => {
                warn!(code = ?status.code(), error = %status.message(), "ping failed");
            }
        }
    }
}
