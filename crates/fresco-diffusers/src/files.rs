//! Reading a model folder's config files: a missing file becomes
//! [`Error::MissingFile`], a malformed one [`Error::Json`], both naming the path.
//! Python's bare `Infinity`/`NaN` tokens, which diffusers may write, are accepted.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// The whole text of `path`.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::MissingFile {
                path: path.to_path_buf(),
            }
        } else {
            Error::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Parses the JSON file at `path` into `T`.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = read_text(path)?;
    let json_error = |source| Error::Json {
        path: path.to_path_buf(),
        source,
    };
    let value = fresco_schedulers::config::python_json_to_value(&text).map_err(|e| match e {
        fresco_schedulers::Error::Json(source) => json_error(source),
        other => Error::Scheduler(other),
    })?;
    serde_json::from_value(value).map_err(json_error)
}

/// Errors with [`Error::MissingFile`] unless `path` is an existing file.
pub(crate) fn require_file(path: &Path) -> Result<()> {
    if path.is_file() {
        Ok(())
    } else {
        Err(Error::MissingFile {
            path: path.to_path_buf(),
        })
    }
}
