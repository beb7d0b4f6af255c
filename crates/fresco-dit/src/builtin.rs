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

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use fresco_pipeline::{Error, FolderKind, ModelRegistry, Pipeline, Result};
use tracing::debug;

use crate::config::DitConfig;
use crate::pipeline::{CONFIG_FILE, DitPipeline, WEIGHTS_FILE};

use fresco_core::capabilities::DIT_BUILTIN_MODELS as BUILTIN;
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
        .with_builtin_weights(builtin_weights)
        .with_kind(folder_kind())
}

/// The bytes a built-in model's weights hash is taken over: the trained
/// model's `model.safetensors` as compiled in; a seeded random model's
/// weights in [`DitPipeline::weights_bytes`]'s form.
pub fn builtin_weights(model_id: &str) -> Result<Cow<'static, [u8]>> {
    if model_id == FRESCO_SHAPES {
        return Ok(Cow::Borrowed(FRESCO_SHAPES_WEIGHTS));
    }
    let seed = builtin_seed(model_id).ok_or_else(|| Error::UnknownModel(model_id.to_owned()))?;
    let model = DitPipeline::random(model_id, DitConfig::tiny(), seed, &Device::Cpu)?;
    Ok(Cow::Owned(model.weights_bytes()?))
}

/// Weight seed of a built-in model, `None` for unknown ids.
fn builtin_seed(model_id: &str) -> Option<u64> {
    match model_id {
        TINY_RANDOM_DIT => Some(0x0F4E_5C00_0000_0001),
        TINY_RANDOM_DIT_B => Some(0x0F4E_5C00_0000_0002),
        _ => None,
    }
}

/// The config of a built-in model, [`Error::UnknownModel`] for other ids.
pub fn builtin_config(model_id: &str) -> Result<DitConfig> {
    match model_id {
        FRESCO_SHAPES => Ok(serde_json::from_str(FRESCO_SHAPES_CONFIG)?),
        _ if builtin_seed(model_id).is_some() => Ok(DitConfig::tiny()),
        _ => Err(Error::UnknownModel(model_id.to_owned())),
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

/// fresco's own DiT folders (`config.json` + `model.safetensors`); their
/// capabilities come from `config.json` alone.
pub fn folder_kind() -> FolderKind {
    FolderKind::new("fresco-dit", is_dit_folder, |dir, model_id, device| {
        Ok(Arc::new(DitPipeline::from_dir_with_id(dir, model_id, device)?) as Arc<dyn Pipeline>)
    })
    .with_capabilities(|dir, model_id| Ok(DitConfig::from_dir(dir)?.capabilities(model_id)))
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

    /// The capability table in fresco-core (what the coordinator checks
    /// without a worker) is what each built-in model's real config says, and
    /// what its loaded pipeline enforces.
    #[test]
    fn the_builtin_capability_table_matches_the_real_configs() {
        use fresco_core::model_capabilities::builtin_capabilities;
        use fresco_pipeline::{GenerateParams, Schedule};

        for id in builtin_models() {
            let table = builtin_capabilities(id).expect("in the table");
            let config = builtin_config(id).unwrap();
            assert_eq!(config.capabilities(id), table, "{id}");
            let registry = dit_registry(None);
            assert_eq!(registry.capabilities(id).unwrap(), table, "{id}");

            let pipeline = load(id, &Device::Cpu).unwrap();
            let max = table.max_side.expect("a DiT has a max side");
            let multiple = table.side_multiple;
            let params = |width: u32, sampler: &str| GenerateParams {
                prompt: "a red circle".into(),
                negative_prompt: String::new(),
                seed: 1,
                steps: 1,
                width,
                height: multiple,
                guidance: 1.0,
                n: 1,
                sampler: sampler.into(),
                schedule: Schedule::default(),
            };
            let refused = |p: GenerateParams| {
                pipeline
                    .generate(&p, &mut |_| std::ops::ControlFlow::Continue(()))
                    .is_err()
            };
            assert!(
                refused(params(max + multiple, "euler")),
                "{id}: past max_side"
            );
            assert!(
                refused(params(multiple + multiple / 2, "euler")),
                "{id}: off the multiple"
            );
            assert!(
                refused(params(multiple, "ddim")),
                "{id}: a sampler it does not run"
            );
            assert_eq!(pipeline.samplers(), table.samplers, "{id}");
        }
        assert!(matches!(
            builtin_config("sdxl"),
            Err(Error::UnknownModel(_))
        ));
    }

    #[test]
    fn a_dit_folders_capabilities_come_from_its_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = DitConfig {
            patch_size: 4,
            max_side: 96,
            ..DitConfig::tiny()
        };
        let model = DitPipeline::random("mine", config, 3, &Device::Cpu).unwrap();
        model.save(dir.path().join("mine")).unwrap();
        let registry = dit_registry(Some(dir.path().to_path_buf()));
        let caps = registry.capabilities("mine").unwrap();
        assert_eq!(caps.model, "mine");
        assert_eq!(
            (caps.side_multiple, caps.max_side, caps.max_images),
            (4, Some(96), None)
        );
        assert_eq!(caps.samplers, ["euler", "heun"]);

        // The weights are never read: a folder whose weights are garbage
        // still tells what it accepts; a config that breaks its own rules
        // does not.
        std::fs::write(dir.path().join("mine/model.safetensors"), b"not weights").unwrap();
        assert_eq!(registry.capabilities("mine").unwrap(), caps);
        std::fs::write(dir.path().join("mine/config.json"), r#"{"patch_size": 0}"#).unwrap();
        assert!(registry.capabilities("mine").is_err());
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
