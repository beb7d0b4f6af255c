//! The DiT's built-in models and model folders, registered into the model
//! contract's [`ModelRegistry`].
//!
//! Built-in models need no files: `fresco-shapes` (fresco's DiT trained on
//! captioned shapes; its `models/fresco-shapes` folder is compiled into the
//! binary, so it loads with no network and no files), `tiny-random-dit` (the
//! tiny DiT with seeded random weights, [`DitConfig::tiny`]) and
//! `tiny-random-dit-b` (same architecture, different weight seed — handy for
//! exercising model switching and cache eviction). A DiT model folder holds
//! `config.json` and `model.safetensors` and is loaded with
//! [`DitPipeline::from_dir_with_id`].

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use fresco_pipeline::{Error, FolderKind, ModelRegistry, Pipeline, Result};
use tracing::debug;

use crate::config::DitConfig;
use crate::pipeline::{CONFIG_FILE, DitPipeline, WEIGHTS_FILE};

use fresco_core::capabilities::BUILTIN_MODELS as BUILTIN;
/// The built-in model ids, defined once in fresco-core with the default model.
pub use fresco_core::capabilities::{FRESCO_SHAPES, TINY_RANDOM_DIT, TINY_RANDOM_DIT_B};

/// `config.json` of the trained built-in model.
const FRESCO_SHAPES_CONFIG: &str = include_str!("../../../models/fresco-shapes/config.json");
/// `model.safetensors` of the trained built-in model.
const FRESCO_SHAPES_WEIGHTS: &[u8] =
    include_bytes!("../../../models/fresco-shapes/model.safetensors");

/// Ids of the models [`load`] can construct without any files.
pub fn builtin_models() -> &'static [&'static str] {
    BUILTIN
}

/// `registry` serving the DiT's built-in models and its model folders
/// (register the DiT first, so its folder kind is tried first).
pub fn register(registry: ModelRegistry) -> ModelRegistry {
    registry
        .with_builtins(BUILTIN, load)
        .with_kind(folder_kind())
}

/// Weight seed of a built-in model, `None` for unknown ids.
fn builtin_seed(model_id: &str) -> Option<u64> {
    match model_id {
        TINY_RANDOM_DIT => Some(0x0F4E_5C00_0000_0001),
        TINY_RANDOM_DIT_B => Some(0x0F4E_5C00_0000_0002),
        _ => None,
    }
}

/// Loads the pipeline for `model_id` on `device`; [`Error::UnknownModel`] for ids
/// that are not built in.
pub fn load(model_id: &str, device: &Device) -> Result<Arc<dyn Pipeline>> {
    if model_id == FRESCO_SHAPES {
        debug!(model = model_id, "loading the embedded trained model");
        return Ok(Arc::new(DitPipeline::from_bytes(
            model_id,
            FRESCO_SHAPES_CONFIG,
            FRESCO_SHAPES_WEIGHTS,
            device,
        )?));
    }
    let seed = builtin_seed(model_id).ok_or_else(|| Error::UnknownModel(model_id.to_owned()))?;
    debug!(model = model_id, "constructing built-in model");
    Ok(Arc::new(DitPipeline::random(
        model_id,
        DitConfig::tiny(),
        seed,
        device,
    )?))
}

/// Whether `dir` is a fresco DiT folder.
fn is_dit_folder(dir: &Path) -> bool {
    dir.join(CONFIG_FILE).is_file() && dir.join(WEIGHTS_FILE).is_file()
}

/// fresco's own DiT folders (`config.json` + `model.safetensors`).
pub fn folder_kind() -> FolderKind {
    FolderKind::new("fresco-dit", is_dit_folder, |dir, model_id, device| {
        Ok(Arc::new(DitPipeline::from_dir_with_id(dir, model_id, device)?) as Arc<dyn Pipeline>)
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A registry of the DiT's models, over `models_dir`.
    fn dit_registry(models_dir: Option<PathBuf>) -> ModelRegistry {
        register(ModelRegistry::new(models_dir))
    }

    #[test]
    fn a_models_directory_adds_its_folders_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let model = DitPipeline::random("mine", DitConfig::tiny(), 3, &Device::Cpu).unwrap();
        model.save(dir.path().join("mine")).unwrap();
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        let registry = dit_registry(Some(dir.path().to_path_buf()));
        assert_eq!(
            registry.available().unwrap(),
            [
                "fresco-shapes",
                "tiny-random-dit",
                "tiny-random-dit-b",
                "mine"
            ]
        );
        let loaded = registry.load("mine", &Device::Cpu).unwrap();
        assert_eq!(loaded.model_id(), "mine");
        assert!(matches!(
            registry.load("empty", &Device::Cpu),
            Err(Error::UnknownModel(_))
        ));
        assert!(matches!(
            registry.load("../mine", &Device::Cpu),
            Err(Error::UnknownModel(_))
        ));
        assert!(registry.load("tiny-random-dit", &Device::Cpu).is_ok());
        assert_eq!(dit_registry(None).available().unwrap().len(), 3);
    }

    #[test]
    fn a_hub_cache_serves_its_snapshots_under_their_hub_ids() {
        let hub = tempfile::tempdir().unwrap();
        let model = DitPipeline::random("x", DitConfig::tiny(), 3, &Device::Cpu).unwrap();
        // The snapshot refs/main names, beside an older one.
        let repo = hub.path().join("models--acme--tiny-dit");
        model.save(repo.join("snapshots/abc123")).unwrap();
        std::fs::create_dir_all(repo.join("snapshots/old")).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "abc123\n").unwrap();
        // A dataset repo and a model without weights are not models.
        std::fs::create_dir_all(hub.path().join("datasets--acme--pics/snapshots/1")).unwrap();
        std::fs::create_dir_all(hub.path().join("models--acme--empty/snapshots/1")).unwrap();
        // A kind of folder the registry learns about: any folder with `MARK`.
        let other = hub.path().join("models--acme--other/snapshots/9");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("MARK"), "").unwrap();
        let registry = dit_registry(None)
            .with_hf_cache(Some(hub.path().to_path_buf()))
            .with_kind(FolderKind::new(
                "marked",
                |dir| dir.join("MARK").is_file(),
                |_dir, id, device| load_as(id, TINY_RANDOM_DIT, device),
            ));
        assert_eq!(
            registry.available().unwrap(),
            [
                "fresco-shapes",
                "tiny-random-dit",
                "tiny-random-dit-b",
                "acme/other",
                "acme/tiny-dit"
            ]
        );
        assert_eq!(
            registry
                .load("acme/tiny-dit", &Device::Cpu)
                .unwrap()
                .model_id(),
            "acme/tiny-dit"
        );
        assert!(registry.load("acme/other", &Device::Cpu).is_ok());
        assert!(matches!(
            registry.load("acme/empty", &Device::Cpu),
            Err(Error::UnknownModel(_))
        ));
    }

    /// The built-in `builtin` under another id.
    fn load_as(id: &str, builtin: &str, device: &Device) -> Result<Arc<dyn Pipeline>> {
        let seed = builtin_seed(builtin).unwrap_or_default();
        Ok(Arc::new(DitPipeline::random(
            id,
            DitConfig::tiny(),
            seed,
            device,
        )?))
    }

    #[test]
    fn builtins_load_and_unknown_is_rejected() {
        assert!(builtin_models().contains(&"tiny-random-dit"));
        for id in builtin_models() {
            let p = load(id, &Device::Cpu).unwrap();
            assert_eq!(p.model_id(), *id);
            assert!(p.memory_bytes() > 100_000, "{}", p.memory_bytes());
            assert!(p.samplers().contains(&"euler") && p.samplers().contains(&"heun"));
        }
        match load("sdxl", &Device::Cpu) {
            Err(Error::UnknownModel(id)) => assert_eq!(id, "sdxl"),
            other => panic!(
                "expected UnknownModel, got {:?}",
                other.map(|p| p.model_id().to_owned())
            ),
        }
    }
}
