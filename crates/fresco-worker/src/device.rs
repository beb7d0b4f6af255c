//! The hardware a worker samples on: the `--device` and `--dtype` flags
//! turned into candle's device and float type, and the default model-cache
//! budget taken from the memory the models will live in.

use anyhow::bail;
use candle_core::{DType, Device};
pub use fresco_pipeline::{device_label, parse_device};
use tracing::info;

/// The float type named by `--dtype` (f32, f16 or bf16) for `device`: half
/// precision only on a GPU, where it is fast; the CPU computes in f32.
pub fn parse_dtype(name: &str, device: &Device) -> anyhow::Result<DType> {
    let dtype = match name {
        "f32" => DType::F32,
        "f16" => DType::F16,
        "bf16" => DType::BF16,
        _ => bail!("--dtype {name}: expected f32, f16 or bf16"),
    };
    if dtype != DType::F32 && device.is_cpu() {
        bail!("--dtype {name}: half precision needs a GPU device; on the CPU use f32");
    }
    Ok(dtype)
}

/// Bytes of model weights to keep loaded when `--cache-budget-mb` is not
/// given: half of the memory the models live in (the machine's RAM for the
/// CPU; the GPU's memory as `nvidia-smi` reports it for CUDA), so sampling
/// keeps room for activations. Falls back to 4 GiB when it cannot tell.
pub fn default_cache_budget(device: &Device) -> u64 {
    const FALLBACK: u64 = 4 << 30;
    let total = match device.location() {
        candle_core::DeviceLocation::Cpu => host_memory_bytes(),
        candle_core::DeviceLocation::Cuda { gpu_id } => gpu_memory_bytes(gpu_id),
        candle_core::DeviceLocation::Metal { .. } => None,
    };
    let budget = total.map_or(FALLBACK, |t| t / 2);
    info!(
        device = %device_label(device),
        memory_bytes = ?total,
        budget_bytes = budget,
        "model cache budget from device memory"
    );
    budget
}

/// `MemTotal` of `/proc/meminfo`.
fn host_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    meminfo_total(&info)
}

fn meminfo_total(info: &str) -> Option<u64> {
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Total memory of GPU `gpu_id` from `nvidia-smi`.
fn gpu_memory_bytes(gpu_id: usize) -> Option<u64> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=memory.total",
            "--format=csv,noheader,nounits",
            &format!("--id={gpu_id}"),
        ])
        .output()
        .ok()?;
    let mib: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(mib << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_dtypes_parse_or_explain() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        for bad in ["gpu", "cuda:x", "cuda1"] {
            let err = parse_device(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
        assert_eq!(parse_dtype("f32", &Device::Cpu).unwrap(), DType::F32);
        let err = parse_dtype("f16", &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("needs a GPU"), "{err}");
        assert!(parse_dtype("f64", &Device::Cpu).is_err());
        assert_eq!(device_label(&Device::Cpu), "cpu");
    }

    #[test]
    fn the_cpu_budget_is_half_the_machines_memory() {
        assert_eq!(
            meminfo_total("MemTotal:       24684148 kB\nMemFree: 1 kB\n"),
            Some(24_684_148 * 1024)
        );
        assert_eq!(meminfo_total("nothing"), None);
        let total = host_memory_bytes().expect("/proc/meminfo on Linux");
        assert_eq!(default_cache_budget(&Device::Cpu), total / 2);
    }
}
