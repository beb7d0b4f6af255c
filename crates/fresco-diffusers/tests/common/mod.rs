//! Shared helpers for the reference tests (tiny-sd, tiny-sdxl, tiny-sd3, tiny-sd35,
//! tiny-flux, tiny-flux-schnell): the data folders (and writable copies of tiny-sd),
//! `expected.json`, nested JSON arrays as candle tensors, and the check of a
//! result against diffusers' within the reference tolerances.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde_json::Value;

pub fn tiny_sd() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-sd")
}

/// A writable copy of the tiny-sd folder in a temporary directory.
pub fn tiny_sd_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_dir(&tiny_sd(), tmp.path());
    tmp
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let dest = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).expect("copy");
        }
    }
}

/// The reference folder `tests/data/{name}`.
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

pub fn tiny_sdxl() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-sdxl")
}

pub fn expected() -> Value {
    expected_in(&tiny_sd())
}

pub fn expected_in(dir: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(dir.join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json parses")
}

/// A nested JSON array of numbers as an f32 tensor of the same shape.
pub fn tensor(v: &Value) -> Tensor {
    let mut shape = Vec::new();
    let mut cur = v;
    while let Value::Array(items) = cur {
        shape.push(items.len());
        cur = &items[0];
    }
    let mut flat = Vec::new();
    flatten(v, &mut flat);
    Tensor::from_vec(flat, shape, &Device::Cpu).expect("tensor")
}

fn flatten(v: &Value, out: &mut Vec<f32>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        Value::Number(n) => out.push(n.as_f64().expect("number") as f32),
        other => panic!("not a number: {other}"),
    }
}

/// A JSON array of token ids (`[[...]]` or `[...]`).
pub fn ids(v: &Value) -> Vec<u32> {
    let row = match v {
        Value::Array(items) if matches!(items.first(), Some(Value::Array(_))) => &items[0],
        other => other,
    };
    row.as_array()
        .expect("ids array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// Largest |a - b| over all elements (shapes must agree).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a - b)
        .expect("sub")
        .abs()
        .expect("abs")
        .flatten_all()
        .expect("flatten")
        .max(0)
        .expect("max")
        .to_scalar::<f32>()
        .expect("scalar")
}

/// The tolerance of text encoders, UNets, transformers and VAEs (max |Δ|).
pub const MODEL_TOL: f32 = 1e-3;
/// The tolerance of whole pipeline images (max |Δ|).
pub const IMAGE_TOL: f32 = 2e-3;

/// Asserts `got` is within `tol` of diffusers' `want`, printing the error.
pub fn check(what: &str, got: &Tensor, want: &Tensor, tol: f32) {
    let d = max_abs_diff(got, want);
    println!("{what}: max |Δ| = {d:.3e} (tolerance {tol:.0e})");
    assert!(d <= tol, "{what}: max |Δ| = {d:.3e} exceeds {tol:.0e}");
}
