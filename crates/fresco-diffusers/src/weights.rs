//! Weights of one model component: memory-maps its safetensors file (or the shards an
//! `*.safetensors.index.json` lists) behind a checking [`VarBuilder`] backend, so a tensor
//! that is missing or shaped differently from what the config implies becomes a typed
//! error naming the file, the tensor and both shapes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::files::read_json;

/// What went wrong with one tensor lookup (kept so a candle error can be mapped back).
#[derive(Debug, Clone)]
enum TensorIssue {
    Missing {
        name: String,
        expected: Vec<usize>,
    },
    Shape {
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
}

/// The open weights of one component.
pub(crate) struct Weights {
    path: PathBuf,
    vb: VarBuilder<'static>,
    issue: Arc<Mutex<Option<TensorIssue>>>,
}

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Weights").field("path", &self.path).finish()
    }
}

#[derive(Deserialize)]
struct ShardIndex {
    weight_map: std::collections::BTreeMap<String, String>,
}

impl Weights {
    /// Opens `{dir}/{stem}.safetensors`, or the shards `{dir}/{stem}.safetensors.index.json`
    /// names; [`Error::MissingFile`] (naming the single-file path) when neither exists.
    pub(crate) fn open(dir: &Path, stem: &str, dtype: DType, device: &Device) -> Result<Self> {
        let single = dir.join(format!("{stem}.safetensors"));
        let index = dir.join(format!("{stem}.safetensors.index.json"));
        let (path, files) = if single.is_file() {
            (single.clone(), vec![single])
        } else if index.is_file() {
            let shards: ShardIndex = read_json(&index)?;
            let names: BTreeSet<String> = shards.weight_map.into_values().collect();
            let files: Vec<PathBuf> = names.into_iter().map(|n| dir.join(n)).collect();
            for file in &files {
                crate::files::require_file(file)?;
            }
            (index, files)
        } else {
            return Err(Error::MissingFile { path: single });
        };
        let tensors = mmap(&files).map_err(|e| Error::Safetensors {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let issue = Arc::new(Mutex::new(None));
        let backend = Checked {
            tensors,
            issue: Arc::clone(&issue),
        };
        let vb = VarBuilder::from_backend(Box::new(backend), dtype, device.clone());
        Ok(Self { path, vb, issue })
    }

    /// The file the weights come from (the index file for sharded weights).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A builder rooted at the top of the file.
    pub(crate) fn vb(&self) -> VarBuilder<'static> {
        self.vb.clone()
    }

    /// Runs a model constructor over these weights, turning its failure into a typed
    /// error about the tensor that caused it.
    pub(crate) fn build<T>(
        &self,
        construct: impl FnOnce(VarBuilder<'static>) -> candle_core::Result<T>,
    ) -> Result<T> {
        if let Ok(mut issue) = self.issue.lock() {
            *issue = None;
        }
        construct(self.vb()).map_err(|source| self.explain(source))
    }

    fn explain(&self, source: candle_core::Error) -> Error {
        let issue = self.issue.lock().ok().and_then(|mut i| i.take());
        let path = self.path.clone();
        match issue {
            Some(TensorIssue::Missing { name, expected }) => Error::MissingTensor {
                path,
                name,
                expected,
            },
            Some(TensorIssue::Shape {
                name,
                expected,
                actual,
            }) => Error::TensorShape {
                path,
                name,
                expected,
                actual,
            },
            None => Error::Model { path, source },
        }
    }
}

#[allow(unsafe_code)]
fn mmap(files: &[PathBuf]) -> candle_core::Result<MmapedSafetensors> {
    // SAFETY: the mapping is read-only and a model folder is not modified while a model
    // loaded from it is in use; fresco never writes to model folders.
    unsafe { MmapedSafetensors::multi(files) }
}

/// A safetensors backend that records which tensor a failed lookup was about.
struct Checked {
    tensors: MmapedSafetensors,
    issue: Arc<Mutex<Option<TensorIssue>>>,
}

impl Checked {
    fn record(&self, issue: TensorIssue) {
        if let Ok(mut slot) = self.issue.lock() {
            *slot = Some(issue);
        }
    }
}

impl SimpleBackend for Checked {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let expected = shape.dims().to_vec();
        let actual = match self.tensors.get(name) {
            Ok(view) => view.shape().to_vec(),
            Err(e) => {
                self.record(TensorIssue::Missing {
                    name: name.to_string(),
                    expected,
                });
                return Err(e);
            }
        };
        if actual != expected {
            self.record(TensorIssue::Shape {
                name: name.to_string(),
                expected: expected.clone(),
                actual: actual.clone(),
            });
            return Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: shape,
                got: actual.into(),
            });
        }
        self.tensors.load(name, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.tensors.load(name, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.get(name).is_ok()
    }
}
