//! Model registry: maps model ids to pipeline constructors.
//!
//! Built-in models need no files: `fresco-shapes` (fresco's DiT trained on
//! captioned shapes; its `models/fresco-shapes` folder is compiled into the
//! binary, so it loads with no network and no files), `tiny-random-dit` (the
//! tiny DiT with seeded random weights, [`DitConfig::tiny`]) and
//! `tiny-random-dit-b` (same architecture, different weight seed — handy for
//! exercising model switching and cache eviction). [`ModelRegistry`] adds a models directory: every folder in it
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

/// Loads the model folder at a path under a model id.
pub type FolderLoader =
    Arc<dyn Fn(&Path, &str, &Device) -> Result<Arc<dyn Pipeline>> + Send + Sync>;

/// A kind of model folder a registry serves besides fresco's own DiT folders
/// (`config.json` + `model.safetensors`), e.g. diffusers-layout Stable
/// Diffusion folders: how to recognise one and how to load it.
#[derive(Clone)]
pub struct FolderKind {
    name: &'static str,
    detect: fn(&Path) -> bool,
    load: FolderLoader,
}

impl FolderKind {
    /// A kind called `name` (for logs) that holds the folders `detect` accepts.
    pub fn new(
        name: &'static str,
        detect: fn(&Path) -> bool,
        load: impl Fn(&Path, &str, &Device) -> Result<Arc<dyn Pipeline>> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name,
            detect,
            load: Arc::new(load),
        }
    }

    /// The kind's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl std::fmt::Debug for FolderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderKind")
            .field("name", &self.name)
            .finish()
    }
}

/// Whether `dir` is a fresco DiT folder.
fn is_dit_folder(dir: &Path) -> bool {
    dir.join(CONFIG_FILE).is_file() && dir.join(WEIGHTS_FILE).is_file()
}

/// fresco's own DiT folders (`config.json` + `model.safetensors`), the kind
/// every registry serves.
fn dit_kind() -> FolderKind {
    FolderKind::new("fresco-dit", is_dit_folder, |dir, model_id, device| {
        Ok(Arc::new(DitPipeline::from_dir_with_id(dir, model_id, device)?) as Arc<dyn Pipeline>)
    })
}

/// One model found on disk, and the kind that recognised it.
struct FoundModel {
    id: String,
    dir: PathBuf,
    kind: FolderKind,
}

/// The models a worker can serve: the built-in ones, the model folders of an
/// optional models directory (served under the folder's name), and the
/// models of an optional Hugging Face hub cache (served offline under their
/// hub id, e.g. `stabilityai/sdxl-turbo`, from the snapshot `refs/main`
/// names). Folders are fresco DiT folders or of a registered [`FolderKind`].
#[derive(Debug, Clone)]
pub struct ModelRegistry {
    models_dir: Option<PathBuf>,
    hf_cache: Option<PathBuf>,
    /// Tried in order; fresco's DiT folders first.
    kinds: Vec<FolderKind>,
}

impl Default for ModelRegistry {
    fn default() -> Self {
        Self::new(None)
    }
}

impl ModelRegistry {
    pub fn new(models_dir: Option<PathBuf>) -> Self {
        Self {
            models_dir,
            hf_cache: None,
            kinds: vec![dit_kind()],
        }
    }

    /// Also serves the models of the Hugging Face hub cache `dir` (the
    /// folder holding `models--<org>--<name>` folders).
    pub fn with_hf_cache(mut self, dir: Option<PathBuf>) -> Self {
        self.hf_cache = dir;
        self
    }

    /// Also serves folders of `kind`.
    pub fn with_kind(mut self, kind: FolderKind) -> Self {
        self.kinds.push(kind);
        self
    }

    /// The kind of the folder `dir`, if this registry can load it.
    fn kind_of(&self, dir: &Path) -> Option<&FolderKind> {
        self.kinds.iter().find(|k| (k.detect)(dir))
    }

    /// The models of the models directory and the hub cache, sorted by id.
    fn found_models(&self) -> Result<Vec<FoundModel>> {
        let mut found = Vec::new();
        if let Some(dir) = &self.models_dir {
            for (name, path) in subdirectories(dir)? {
                if let Some(kind) = self.kind_of(&path) {
                    found.push(FoundModel {
                        id: name,
                        kind: kind.clone(),
                        dir: path,
                    });
                }
            }
        }
        if let Some(hub) = &self.hf_cache {
            for (name, path) in subdirectories(hub)? {
                let Some(id) = hub_model_id(&name) else {
                    continue;
                };
                if let Some(snapshot) = hub_snapshot(&path)
                    && let Some(kind) = self.kind_of(&snapshot)
                {
                    found.push(FoundModel {
                        id,
                        kind: kind.clone(),
                        dir: snapshot,
                    });
                }
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }

    /// Every model id this registry can load: built-in ones first.
    pub fn available(&self) -> Result<Vec<String>> {
        let mut models: Vec<String> = BUILTIN.iter().map(|m| (*m).to_owned()).collect();
        for model in self.found_models()? {
            if !models.contains(&model.id) {
                models.push(model.id);
            }
        }
        Ok(models)
    }

    /// Loads `model_id`: a built-in model, or a folder the registry found.
    /// Any other id is [`Error::UnknownModel`], never a path.
    pub fn load(&self, model_id: &str, device: &Device) -> Result<Arc<dyn Pipeline>> {
        if BUILTIN.contains(&model_id) {
            return load(model_id, device);
        }
        let found = self.found_models()?;
        let Some(model) = found.iter().find(|m| m.id == model_id) else {
            return Err(Error::UnknownModel(model_id.to_owned()));
        };
        debug!(model = model_id, kind = model.kind.name, dir = %model.dir.display(), "loading model folder");
        (model.kind.load)(&model.dir, model_id, device)
    }
}

/// The (name, path) of every directory directly under `dir`, names that are
/// not UTF-8 skipped.
fn subdirectories(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let io = |source| Error::Io {
        path: dir.to_owned(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        if let (true, Some(name)) = (path.is_dir(), entry.file_name().to_str()) {
            out.push((name.to_owned(), path));
        }
    }
    Ok(out)
}

/// `models--org--name` → `org/name` (the hub's cache folder naming).
fn hub_model_id(folder: &str) -> Option<String> {
    let rest = folder.strip_prefix("models--")?;
    let id = rest.replace("--", "/");
    (!id.is_empty()).then_some(id)
}

/// The snapshot of a hub cache model folder: the one `refs/main` names, else
/// the only one there is.
fn hub_snapshot(model_dir: &Path) -> Option<PathBuf> {
    let snapshots = model_dir.join("snapshots");
    if let Ok(commit) = std::fs::read_to_string(model_dir.join("refs/main")) {
        let dir = snapshots.join(commit.trim());
        if dir.is_dir() {
            return Some(dir);
        }
    }
    let mut all = subdirectories(&snapshots).ok()?;
    (all.len() == 1).then(|| all.remove(0).1)
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
        assert_eq!(ModelRegistry::default().available().unwrap().len(), 3);
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
        let registry = ModelRegistry::default()
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
