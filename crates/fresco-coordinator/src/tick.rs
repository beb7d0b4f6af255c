//! The loop the coordinator's background passes (the lease reaper, the
//! reconciler) share: one pass at once and then every interval until
//! shutdown; a failed pass is logged and the next tick tries again.

use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Runs `pass` over `ctx` at once and then every `interval` until
/// `shutdown` is cancelled. A pass that overruns its interval delays the
/// next one rather than bunching them up. `name` names the pass in the log
/// line of a failed pass (as its `pass` field and in the message).
pub async fn every<C, T>(
    name: &'static str,
    interval: Duration,
    shutdown: &CancellationToken,
    ctx: &C,
    pass: impl AsyncFn(&C) -> anyhow::Result<T>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(err) = pass(ctx).await {
            warn!(pass = name, error = %err, "{name} pass failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Counts its passes; the second one fails.
    async fn counted(passes: &AtomicU32) -> anyhow::Result<u32> {
        let n = passes.fetch_add(1, Ordering::SeqCst) + 1;
        anyhow::ensure!(n != 2, "pass {n} failed");
        Ok(n)
    }

    #[tokio::test(start_paused = true)]
    async fn passes_run_at_once_then_every_interval_through_failures_until_shutdown() {
        let passes = std::sync::Arc::new(AtomicU32::new(0));
        let shutdown = CancellationToken::new();
        let looping = tokio::spawn({
            let (passes, shutdown) = (passes.clone(), shutdown.clone());
            async move {
                every(
                    "counting",
                    Duration::from_secs(10),
                    &shutdown,
                    &*passes,
                    counted,
                )
                .await;
            }
        });
        tokio::task::yield_now().await;
        assert_eq!(
            passes.load(Ordering::SeqCst),
            1,
            "the first pass runs at once"
        );
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert_eq!(
            passes.load(Ordering::SeqCst),
            3,
            "a pass at 10 s (failed) and one at 20 s: a failure does not end the loop"
        );
        shutdown.cancel();
        looping.await.expect("the loop ends at shutdown");
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(passes.load(Ordering::SeqCst), 3, "no pass after shutdown");
    }
}
