//! The SHA-256 that names a model's weights, as a manifest and each PNG's
//! `Model hash:` carry it: of a built-in model, the bytes of its weights
//! (what its family registers, [`crate::ModelRegistry::with_builtin_weights`]);
//! of a model folder, its weight files read one after another in sorted
//! relative-path order, so a folder of one weights file hashes as
//! `sha256sum` of that file does. Reading gigabytes takes a while: it runs
//! once per load, on the loading thread (see [`crate::ModelCache`]).

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// File extensions of weights in a model folder.
const WEIGHT_EXTENSIONS: &[&str] = &["safetensors", "bin", "ckpt", "pt", "pth", "gguf"];

/// The lower-case hex SHA-256 of `bytes`.
pub fn bytes_sha256(bytes: &[u8]) -> String {
    fresco_core::digest::sha256_hex(bytes)
}

/// The lower-case hex SHA-256 of the weight files under `dir`, read in
/// sorted relative-path order (`/`-separated; hidden entries skipped;
/// links followed, as a Hugging Face snapshot's are). A folder without
/// any is [`Error::MissingModelFile`].
pub fn folder_sha256(dir: &Path) -> Result<String> {
    let mut files = Vec::new();
    weight_files(dir, dir, &mut files)?;
    if files.is_empty() {
        return Err(Error::MissingModelFile(dir.join("*.safetensors")));
    }
    files.sort();
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    for (_, path) in files {
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::File::open(&path).map_err(io)?;
        loop {
            let read = file.read(&mut buffer).map_err(io)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
    }
    Ok(fresco_core::digest::hex(&hasher.finalize()))
}

/// Collects `(relative path, path)` of every weight file under `dir`.
fn weight_files(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let io = |source| Error::Io {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            weight_files(root, &path, out)?;
        } else if is_weights(&path) {
            out.push((relative(root, &path), path));
        }
    }
    Ok(())
}

fn is_weights(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| WEIGHT_EXTENSIONS.contains(&e))
}

/// `path` under `root`, `/`-separated.
fn relative(root: &Path, path: &Path) -> String {
    let rest = path.strip_prefix(root).unwrap_or(path);
    rest.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }

    #[test]
    fn a_folder_hashes_its_weight_files_in_sorted_relative_path_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        write(
            &root.join("vae/diffusion_pytorch_model.safetensors"),
            b"vae",
        );
        write(
            &root.join("unet/diffusion_pytorch_model.safetensors"),
            b"unet",
        );
        write(&root.join("text_encoder/model.safetensors"), b"text");
        write(&root.join("model_index.json"), b"{}");
        write(&root.join(".cache/x.safetensors"), b"hidden");
        assert_eq!(
            folder_sha256(root).expect("hashed"),
            bytes_sha256(b"textunetvae"),
            "text_encoder/, unet/, vae/; configs and hidden files left out"
        );

        let single = tempfile::tempdir().expect("temp dir");
        write(&single.path().join("model.safetensors"), b"weights");
        write(&single.path().join("config.json"), b"{}");
        assert_eq!(
            folder_sha256(single.path()).expect("hashed"),
            bytes_sha256(b"weights"),
            "one file: its own SHA-256"
        );

        let empty = tempfile::tempdir().expect("temp dir");
        assert!(matches!(
            folder_sha256(empty.path()),
            Err(Error::MissingModelFile(_))
        ));
    }
}
