//! Model registry: maps model ids to pipeline constructors, knowing no model
//! family itself.
//!
//! A family registers what it serves: built-in models that need no files
//! ([`ModelRegistry::with_builtins`]) and kinds of model folder
//! ([`ModelRegistry::with_kind`]): how to recognise one and how to load it.
//! The registry then finds folders of those kinds in a models directory
//! (served under the folder's name) and in a Hugging Face hub cache (served
//! under the hub id, e.g. `stabilityai/sdxl-turbo`). It also tells what a
//! model accepts ([`ModelRegistry::capabilities`]) without loading weights:
//! built-in models from fresco-core's table, folders from their config files
//! through their kind's reader ([`FolderKind::with_capabilities`]).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use fresco_core::ModelCapabilities;
use fresco_core::model_capabilities::builtin_capabilities;
use tracing::debug;

use crate::error::{Error, Result};
use crate::types::Pipeline;
use crate::weights;

/// Loads a built-in model (one that needs no files) under its id.
pub type BuiltinLoader = Arc<dyn Fn(&str, &Device) -> Result<Arc<dyn Pipeline>> + Send + Sync>;

/// The bytes of a built-in model's weights, which its weights hash is
/// taken over (see [`crate::weights`]).
pub type BuiltinWeights = Arc<dyn Fn(&str) -> Result<Cow<'static, [u8]>> + Send + Sync>;

/// Built-in models registered together, and how to construct them.
#[derive(Clone)]
struct Builtins {
    ids: &'static [&'static str],
    load: BuiltinLoader,
    /// The bytes of their weights (none: their weights hash is unknown).
    weights: Option<BuiltinWeights>,
}

/// Loads the model folder at a path under a model id.
pub type FolderLoader =
    Arc<dyn Fn(&Path, &str, &Device) -> Result<Arc<dyn Pipeline>> + Send + Sync>;

/// Reads what the model folder at a path accepts, served under a model id,
/// from its config files alone (no weights).
pub type CapabilitiesReader = Arc<dyn Fn(&Path, &str) -> Result<ModelCapabilities> + Send + Sync>;

/// A kind of model folder a registry serves (e.g. fresco's DiT folders, or
/// diffusers-layout Stable Diffusion folders): how to recognise one, how to
/// load it, and how to read what it accepts.
#[derive(Clone)]
pub struct FolderKind {
    name: &'static str,
    detect: fn(&Path) -> bool,
    load: FolderLoader,
    capabilities: Option<CapabilitiesReader>,
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
            capabilities: None,
        }
    }

    /// The same kind, reading a folder's capabilities with `read` (from its
    /// config files, never its weights). Without one, its models' capabilities
    /// are [`Error::CapabilitiesUnknown`].
    pub fn with_capabilities(
        mut self,
        read: impl Fn(&Path, &str) -> Result<ModelCapabilities> + Send + Sync + 'static,
    ) -> Self {
        self.capabilities = Some(Arc::new(read));
        self
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

/// One model found on disk, and the kind that recognised it.
struct FoundModel {
    id: String,
    dir: PathBuf,
    kind: FolderKind,
}

/// The models a worker can serve: the registered built-in ones, the model
/// folders of an optional models directory (served under the folder's name),
/// and the models of an optional Hugging Face hub cache (served offline under
/// their hub id, e.g. `stabilityai/sdxl-turbo`, from the snapshot
/// `refs/main` names). Folders are of a registered [`FolderKind`].
#[derive(Clone)]
pub struct ModelRegistry {
    models_dir: Option<PathBuf>,
    hf_cache: Option<PathBuf>,
    /// In registration order.
    builtins: Vec<Builtins>,
    /// Tried in registration order.
    kinds: Vec<FolderKind>,
}

impl std::fmt::Debug for ModelRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelRegistry")
            .field("models_dir", &self.models_dir)
            .field("hf_cache", &self.hf_cache)
            .field("builtins", &self.builtin_models())
            .field("kinds", &self.kinds)
            .finish()
    }
}

impl Default for ModelRegistry {
    fn default() -> Self {
        Self::new(None)
    }
}

impl ModelRegistry {
    /// A registry of the folders in `models_dir`, with no built-in model and
    /// no folder kind yet: families register theirs.
    pub fn new(models_dir: Option<PathBuf>) -> Self {
        Self {
            models_dir,
            hf_cache: None,
            builtins: Vec::new(),
            kinds: Vec::new(),
        }
    }

    /// Also serves the models of the Hugging Face hub cache `dir` (the
    /// folder holding `models--<org>--<name>` folders).
    pub fn with_hf_cache(mut self, dir: Option<PathBuf>) -> Self {
        self.hf_cache = dir;
        self
    }

    /// Also serves folders of `kind`, tried after the kinds already registered.
    pub fn with_kind(mut self, kind: FolderKind) -> Self {
        self.kinds.push(kind);
        self
    }

    /// Also serves the built-in models `ids`, constructed by `load` (which
    /// receives one of `ids`). They need no files and come before any folder.
    pub fn with_builtins(
        mut self,
        ids: &'static [&'static str],
        load: impl Fn(&str, &Device) -> Result<Arc<dyn Pipeline>> + Send + Sync + 'static,
    ) -> Self {
        self.builtins.push(Builtins {
            ids,
            load: Arc::new(load),
            weights: None,
        });
        self
    }

    /// The built-in models registered last read the bytes of their
    /// weights with `weights` (which receives one of their ids), for their
    /// weights hash ([`ModelRegistry::weights_sha256`]).
    pub fn with_builtin_weights(
        mut self,
        weights: impl Fn(&str) -> Result<Cow<'static, [u8]>> + Send + Sync + 'static,
    ) -> Self {
        if let Some(last) = self.builtins.last_mut() {
            last.weights = Some(Arc::new(weights));
        }
        self
    }

    /// The ids of the registered built-in models, in registration order.
    pub fn builtin_models(&self) -> Vec<&'static str> {
        self.builtins
            .iter()
            .flat_map(|b| b.ids.iter().copied())
            .collect()
    }

    /// The built-in models that serve `model_id`, if any.
    fn builtin(&self, model_id: &str) -> Option<&Builtins> {
        self.builtins.iter().find(|b| b.ids.contains(&model_id))
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
        let mut models: Vec<String> = self
            .builtin_models()
            .into_iter()
            .map(str::to_owned)
            .collect();
        for model in self.found_models()? {
            if !models.contains(&model.id) {
                models.push(model.id);
            }
        }
        Ok(models)
    }

    /// What `model_id` accepts, without loading its weights: a built-in model's
    /// entry of fresco-core's table, or what a found folder's config files say
    /// (through its kind's reader). Any other id is [`Error::UnknownModel`].
    pub fn capabilities(&self, model_id: &str) -> Result<ModelCapabilities> {
        let unknown = |reason: String| Error::CapabilitiesUnknown {
            model: model_id.to_owned(),
            reason,
        };
        if self.builtin(model_id).is_some() {
            return builtin_capabilities(model_id).ok_or_else(|| {
                unknown("a built-in model missing from the capability table".into())
            });
        }
        let found = self.found_models()?;
        let Some(model) = found.iter().find(|m| m.id == model_id) else {
            return Err(Error::UnknownModel(model_id.to_owned()));
        };
        let Some(read) = &model.kind.capabilities else {
            return Err(unknown(format!(
                "{} folders read no capabilities",
                model.kind.name
            )));
        };
        debug!(model = model_id, kind = model.kind.name, dir = %model.dir.display(), "reading model capabilities");
        read(&model.dir, model_id)
    }

    /// The lower-case hex SHA-256 of `model_id`'s weights (see
    /// [`crate::weights`]): of a built-in model, its weights' bytes (empty
    /// when its family registered none); of a folder, its weight files.
    /// Reads every weights byte: call it off the async runtime, once per
    /// load. Any other id is [`Error::UnknownModel`].
    pub fn weights_sha256(&self, model_id: &str) -> Result<String> {
        if let Some(builtin) = self.builtin(model_id) {
            return match &builtin.weights {
                Some(weights) => Ok(weights::bytes_sha256(&weights(model_id)?)),
                None => Ok(String::new()),
            };
        }
        let found = self.found_models()?;
        let Some(model) = found.iter().find(|m| m.id == model_id) else {
            return Err(Error::UnknownModel(model_id.to_owned()));
        };
        weights::folder_sha256(&model.dir)
    }

    /// Loads `model_id`: a built-in model, or a folder the registry found.
    /// Any other id is [`Error::UnknownModel`], never a path.
    pub fn load(&self, model_id: &str, device: &Device) -> Result<Arc<dyn Pipeline>> {
        if let Some(builtin) = self.builtin(model_id) {
            return (builtin.load)(model_id, device);
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
    use fresco_core::capabilities::Family;

    use super::*;

    #[test]
    fn hub_folder_names_become_hub_ids() {
        assert_eq!(
            hub_model_id("models--acme--tiny-dit").as_deref(),
            Some("acme/tiny-dit")
        );
        assert_eq!(hub_model_id("datasets--acme--pics"), None);
        assert_eq!(hub_model_id("models--"), None);
    }

    #[test]
    fn an_empty_registry_serves_nothing() {
        let registry = ModelRegistry::default();
        assert!(registry.available().unwrap().is_empty());
        assert!(matches!(
            registry.load("tiny-random-dit", &Device::Cpu),
            Err(Error::UnknownModel(_))
        ));
        assert!(matches!(
            registry.capabilities("tiny-random-dit"),
            Err(Error::UnknownModel(_))
        ));
    }

    /// A folder kind of any folder holding `MARK`, whose capabilities say
    /// `MARK`'s contents are its side multiple; it never loads.
    fn marked() -> FolderKind {
        FolderKind::new(
            "marked",
            |dir| dir.join("MARK").is_file(),
            |_, id, _| Err(Error::UnknownModel(id.to_owned())),
        )
    }

    fn read_mark(dir: &Path, id: &str) -> Result<ModelCapabilities> {
        let path = dir.join("MARK");
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path, source })?;
        let multiple = text
            .trim()
            .parse()
            .map_err(|e| Error::Config(format!("MARK: {e}")))?;
        Ok(ModelCapabilities::of_family(
            id,
            Family::StableDiffusion,
            multiple,
            None,
            None,
        ))
    }

    #[test]
    fn capabilities_come_from_the_table_or_the_folder_kinds_reader() {
        let dir = tempfile::tempdir().unwrap();
        for (name, mark) in [("sixteen", "16"), ("broken", "x")] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("MARK"), mark).unwrap();
        }
        let registry = ModelRegistry::new(Some(dir.path().to_path_buf()))
            .with_builtins(&["tiny-random-dit", "not-in-the-table"], |id, _| {
                Err(Error::UnknownModel(id.to_owned()))
            })
            .with_kind(marked().with_capabilities(read_mark));

        let builtin = registry.capabilities("tiny-random-dit").unwrap();
        assert_eq!(Some(builtin), builtin_capabilities("tiny-random-dit"));
        assert!(matches!(
            registry.capabilities("not-in-the-table"),
            Err(Error::CapabilitiesUnknown { .. })
        ));
        let folder = registry.capabilities("sixteen").unwrap();
        assert_eq!(
            (folder.model.as_str(), folder.side_multiple),
            ("sixteen", 16)
        );
        assert!(matches!(
            registry.capabilities("broken"),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            registry.capabilities("elsewhere"),
            Err(Error::UnknownModel(_))
        ));

        let without_reader = ModelRegistry::new(Some(dir.path().to_path_buf())).with_kind(marked());
        let err = without_reader.capabilities("sixteen").unwrap_err();
        assert_eq!(
            err.to_string(),
            "capabilities of model `sixteen` unknown: marked folders read no capabilities"
        );
    }
}
