//! Broken model folders give typed errors that name the file (and the tensor and shapes),
//! never a panic.

mod common;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::{tiny_sd, tiny_sd_copy};
use fresco_diffusers::{Error, GenerateParams, Prompt, SdPipeline};

fn load(dir: &Path) -> Result<SdPipeline, Error> {
    SdPipeline::load(dir, &Device::Cpu, DType::F32)
}

#[test]
fn missing_config_names_the_file() {
    let tmp = tiny_sd_copy();
    let gone = tmp.path().join("unet/config.json");
    std::fs::remove_file(&gone).expect("remove");
    let err = load(tmp.path()).expect_err("must fail");
    println!("{err}");
    assert!(
        matches!(&err, Error::MissingFile { path } if *path == gone),
        "{err:?}"
    );
    assert!(err.to_string().contains("unet/config.json"));
}

#[test]
fn missing_weights_name_the_file() {
    let tmp = tiny_sd_copy();
    let gone = tmp.path().join("vae/diffusion_pytorch_model.safetensors");
    std::fs::remove_file(&gone).expect("remove");
    let err = load(tmp.path()).expect_err("must fail");
    println!("{err}");
    assert!(
        matches!(&err, Error::MissingFile { path } if *path == gone),
        "{err:?}"
    );
}

#[test]
fn missing_scheduler_config_names_the_file() {
    let tmp = tiny_sd_copy();
    let gone = tmp.path().join("scheduler/scheduler_config.json");
    std::fs::remove_file(&gone).expect("remove");
    let err = load(tmp.path()).expect_err("must fail");
    assert!(
        matches!(&err, Error::MissingFile { path } if *path == gone),
        "{err:?}"
    );
}

#[test]
fn truncated_weights_file_names_the_file() {
    let tmp = tiny_sd_copy();
    let file = tmp.path().join("unet/diffusion_pytorch_model.safetensors");
    let bytes = std::fs::read(&file).expect("read");
    std::fs::write(&file, &bytes[..bytes.len() / 2]).expect("truncate");
    let err = load(tmp.path()).expect_err("must fail");
    println!("{err}");
    assert!(
        matches!(&err, Error::Safetensors { path, .. } if *path == file),
        "{err:?}"
    );
}

#[test]
fn mismatched_tensor_names_tensor_and_shapes() {
    let tmp = tiny_sd_copy();
    let file = tmp.path().join("unet/diffusion_pytorch_model.safetensors");
    let mut tensors = candle_core::safetensors::load(&file, &Device::Cpu).expect("load");
    tensors.insert(
        "conv_in.weight".into(),
        Tensor::zeros((32, 4, 3, 1), DType::F32, &Device::Cpu).expect("zeros"),
    );
    candle_core::safetensors::save(&tensors, &file).expect("save");
    let err = load(tmp.path()).expect_err("must fail");
    println!("{err}");
    match &err {
        Error::TensorShape {
            path,
            name,
            expected,
            actual,
        } => {
            assert_eq!(path, &file);
            assert_eq!(name, "conv_in.weight");
            assert_eq!(expected, &[32, 4, 3, 3]);
            assert_eq!(actual, &[32, 4, 3, 1]);
        }
        other => panic!("expected a tensor shape error, got {other:?}"),
    }
    assert!(err.to_string().contains("conv_in.weight"));
}

#[test]
fn missing_tensor_names_tensor_and_shape() {
    let tmp = tiny_sd_copy();
    let file = tmp.path().join("text_encoder/model.safetensors");
    let mut tensors = candle_core::safetensors::load(&file, &Device::Cpu).expect("load");
    tensors
        .remove("final_layer_norm.weight")
        .expect("tensor present");
    candle_core::safetensors::save(&tensors, &file).expect("save");
    let err = load(tmp.path()).expect_err("must fail");
    println!("{err}");
    match &err {
        Error::MissingTensor {
            path,
            name,
            expected,
        } => {
            assert_eq!(path, &file);
            assert_eq!(name, "final_layer_norm.weight");
            assert_eq!(expected, &[32]);
        }
        other => panic!("expected a missing tensor error, got {other:?}"),
    }
}

#[test]
fn unsupported_config_value_names_the_field() {
    let tmp = tiny_sd_copy();
    let file = tmp.path().join("text_encoder/config.json");
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(&file, text.replace("quick_gelu", "relu6")).expect("write");
    let err = load(tmp.path()).expect_err("must fail");
    println!("{err}");
    assert!(
        matches!(&err, Error::Unsupported { path, field, .. } if *path == file && field == "hidden_act"),
        "{err:?}"
    );
}

#[test]
fn text_prompt_without_tokenizer_names_the_missing_file() {
    let pipe = load(&tiny_sd()).expect("load");
    let mut params = GenerateParams::new(Prompt::Text("a red fox".into()));
    params.steps = 2;
    let err = pipe.generate(&params).expect_err("must fail");
    println!("{err}");
    match &err {
        Error::NoTokenizer { path } => assert!(path.ends_with("tokenizer/tokenizer.json")),
        other => panic!("expected NoTokenizer, got {other:?}"),
    }
}

#[test]
fn bad_parameters_are_rejected() {
    let pipe = load(&tiny_sd()).expect("load");
    let mut params = GenerateParams::new(Prompt::Tokens(vec![998, 5, 999]));
    params.steps = 2;
    params.width = Some(15);
    assert!(matches!(
        pipe.generate(&params),
        Err(Error::InvalidParams { field: "width", .. })
    ));
    params.width = None;
    params.prompt = Prompt::Tokens(vec![998, 5000, 999]);
    assert!(matches!(
        pipe.generate(&params),
        Err(Error::InvalidParams {
            field: "prompt",
            ..
        })
    ));
    params.prompt = Prompt::Tokens(vec![998, 5, 999]);
    params.n = 0;
    assert!(matches!(
        pipe.generate(&params),
        Err(Error::InvalidParams { field: "n", .. })
    ));
}
