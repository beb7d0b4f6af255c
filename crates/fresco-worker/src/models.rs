//! Which models a worker serves: the ones asked for, checked against what
//! its model registry can load, or everything the registry holds.

use anyhow::bail;
use fresco_diffusion::ModelRegistry;

/// The models to serve: `requested`, or every model of `registry` when
/// none is requested. Fails naming the model that cannot be served, or the
/// model folder whose name cannot be a model id.
pub fn served_models(
    registry: &ModelRegistry,
    requested: &[String],
) -> anyhow::Result<Vec<String>> {
    let available = registry.available()?;
    for model in &available {
        if let Err(err) = fresco_core::validate::model_id(model) {
            bail!(
                "--models-dir: folder {model:?} cannot be a model id: {}",
                err.rule
            );
        }
    }
    if requested.is_empty() {
        return Ok(available);
    }
    for model in requested {
        if !available.contains(model) {
            bail!(
                "--models: unknown model {model:?}; this worker can serve {}",
                available.join(", ")
            );
        }
    }
    Ok(requested.to_vec())
}
