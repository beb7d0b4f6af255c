//! Model registry: maps model ids to pipeline constructors.
//!
//! Built-in models need no files: `tiny-random-dit` (the tiny DiT with seeded
//! random weights, [`DitConfig::tiny`]) and `tiny-random-dit-b` (same architecture,
//! different weight seed — handy for exercising model switching and cache
//! eviction). [`ModelRegistry`] adds a models directory: every folder in it
//! holding `config.json` and `model.safetensors` is a model served under the
//! folder's name, loaded with [`DitPipeline::from_dir_with_id`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use tracing::debug;

use crate::config::DitConfig;
use crate::error::{Error, Result};
use crate::pipeline::{CONFIG_FILE, DitPipeline, WEIGHTS_FILE};
use crate::types::Pipeline;

/// Id of the default built-in model.
pub const TINY_RANDOM_DIT: &str = "tiny-random-dit";
/// Id of the second built-in model (same architecture, other weights).
pub const TINY_RANDOM_DIT_B: &str = "tiny-random-dit-b";

const BUILTIN: &[&str] = &[TINY_RANDOM_DIT, TINY_RANDOM_DIT_B];

/// Ids of the models [`load`] can construct without any files.
pub fn builtin_models() -> &'static [&'static str] {
    BUILTIN
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
    let seed = builtin_seed(model_id).ok_or_else(|| Error::UnknownModel(model_id.to_owned()))?;
    debug!(model = model_id, "constructing built-in model");
    Ok(Arc::new(DitPipeline::random(
        model_id,
        DitConfig::tiny(),
        seed,
        device,
    )?))
}

/// The models a worker can serve: the built-in ones, plus the model folders
/// of an optional models directory.
#[derive(Debug, Clone, Default)]
pub struct ModelRegistry {
    models_dir: Option<PathBuf>,
}

impl ModelRegistry {
    pub fn new(models_dir: Option<PathBuf>) -> Self {
        Self { models_dir }
    }

    /// The folder names under the models directory that hold a model.
    fn folder_models(&self) -> Result<Vec<String>> {
        let Some(dir) = &self.models_dir else {
            return Ok(Vec::new());
        };
        let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        let mut models = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            let is_model = path.join(CONFIG_FILE).is_file() && path.join(WEIGHTS_FILE).is_file();
            if let (true, Some(name)) = (is_model, entry.file_name().to_str()) {
                models.push(name.to_owned());
            }
        }
        models.sort();
        Ok(models)
    }

    /// Every model id this registry can load: built-in ones first.
    pub fn available(&self) -> Result<Vec<String>> {
        let mut models: Vec<String> = BUILTIN.iter().map(|m| (*m).to_owned()).collect();
        for model in self.folder_models()? {
            if !models.contains(&model) {
                models.push(model);
            }
        }
        Ok(models)
    }

    /// Loads `model_id`: a built-in model, or a folder of the models
    /// directory. Any other id is [`Error::UnknownModel`], never a path.
    pub fn load(&self, model_id: &str, device: &Device) -> Result<Arc<dyn Pipeline>> {
        if builtin_seed(model_id).is_some() {
            return load(model_id, device);
        }
        match &self.models_dir {
            Some(dir) if self.folder_models()?.iter().any(|m| m == model_id) => {
                let folder: &Path = dir.as_ref();
                Ok(Arc::new(DitPipeline::from_dir_with_id(
                    folder.join(model_id),
                    model_id,
                    device,
                )?))
            }
            _ => Err(Error::UnknownModel(model_id.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_models_directory_adds_its_folders_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let model = DitPipeline::random("mine", DitConfig::tiny(), 3, &Device::Cpu).unwrap();
        model.save(dir.path().join("mine")).unwrap();
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        let registry = ModelRegistry::new(Some(dir.path().to_path_buf()));
        assert_eq!(
            registry.available().unwrap(),
            ["tiny-random-dit", "tiny-random-dit-b", "mine"]
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
        assert!(ModelRegistry::default().available().unwrap().len() == 2);
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
