//! The tenants' weights, from the store's `tenants` table to the dispatch
//! queues, where pops share each model's workers out in proportion to them.
//! Published by every reconciler pass (so a weight changed in the table
//! takes effect within one pass) and before each submission is pushed (so
//! a new tenant's weight holds from its first task). A failed publication
//! only leaves the last weights in place until the next.

use tracing::{debug, warn};

use crate::Coordinator;

/// Reads every weight from the store and publishes them, replacing the
/// last ones.
pub async fn publish(app: &Coordinator) -> anyhow::Result<()> {
    let weights = app.store.tenant_weights().await?;
    app.dispatch.set_weights(&weights).await?;
    debug!(tenants = weights.len(), "tenant weights published");
    Ok(())
}

/// [`publish`], where a failure is only logged.
pub async fn publish_or_warn(app: &Coordinator) {
    if let Err(err) = publish(app).await {
        warn!(error = %err, "could not publish the tenants' weights; the last ones hold");
    }
}
