//! The compute device named on a command line (`cpu`, `cuda`, `cuda:N`),
//! shared by the worker, the trainer and the evaluator so the three accept
//! the same names and explain a missing GPU the same way.

use candle_core::Device;

use crate::{Error, Result};

/// The device named `name`: `cpu`, `cuda` (GPU 0) or `cuda:N`. A CUDA name
/// on a build without the `cuda` feature, or on a machine without that GPU,
/// is an [`Error::Device`] that says what is needed.
pub fn parse_device(name: &str) -> Result<Device> {
    if name == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = match name.strip_prefix("cuda") {
        Some("") => 0,
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| Error::Device(format!("`{name}`: expected cuda or cuda:N")))?,
        None => {
            return Err(Error::Device(format!(
                "`{name}`: expected cpu, cuda or cuda:N"
            )));
        }
    };
    Device::new_cuda(ordinal).map_err(|e| {
        Error::Device(format!(
            "`{name}`: no CUDA device here ({e}); a build with `--features cuda` \
             on a machine with an NVIDIA GPU is needed"
        ))
    })
}

/// The device's name: `cpu` or `cuda:N` (as [`parse_device`] accepts them),
/// or `metal:N`.
pub fn device_label(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_parses_and_bad_names_are_explained() {
        let cpu = parse_device("cpu").expect("cpu is always there");
        assert!(cpu.is_cpu());
        assert_eq!(device_label(&cpu), "cpu");
        for bad in ["gpu", "cuda:x", "cuda1", "cuda:"] {
            let err = parse_device(bad).expect_err(bad).to_string();
            assert!(err.contains(bad) && err.contains("expected"), "{err}");
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_on_a_cpu_build_names_the_feature() {
        let err = parse_device("cuda:0")
            .expect_err("no cuda here")
            .to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
