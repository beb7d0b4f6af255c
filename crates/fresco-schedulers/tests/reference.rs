//! Trajectories of every scheduler against diffusers 0.42.1 reference runs
//! (`tests/data/*.json`, copied unchanged from the shared reference set): schedule
//! (timesteps, sigmas, init_noise_sigma), initial sample and the sample after every step.
//! The stochastic samplers (DDPM, Euler ancestral, DDIM with eta > 0) draw their noise
//! from a source that replays, draw by draw, the noise the reference run drew.

#![allow(
    clippy::unwrap_used,
    reason = "test crate: helpers panic on failure, like the #[test] functions calling them"
)]

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use fresco_schedulers::config::python_json_to_value;
use fresco_schedulers::{
    NoiseSource, SchedulerConfig, SchedulerKind, SetTimestepsOptions, by_name, from_config,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Reference {
    name: String,
    config: serde_json::Value,
    num_inference_steps: usize,
    #[serde(default)]
    set_timesteps_kwargs: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    step_kwargs: serde_json::Map<String, serde_json::Value>,
    /// Every noise tensor a stochastic run drew, flattened, in draw order.
    noise_per_step: Option<Vec<Vec<f64>>>,
    shape: Vec<usize>,
    offset: f64,
    init_noise_sigma: f64,
    timesteps: Vec<f64>,
    sigmas: Option<Vec<f64>>,
    start: Vec<f64>,
    after_each_step: Vec<Vec<f64>>,
    #[serde(rename = "final")]
    final_sample: Vec<f64>,
}

/// Worst deviation seen, as a fraction of the allowed tolerance (<= 1 passes).
#[derive(Debug, Default)]
struct Worst {
    ratio: f64,
    abs: f64,
    at: String,
}

impl Worst {
    /// Samples and sigmas: within 1e-4 relative, or 1e-5 absolute near zero.
    fn check(&mut self, what: &str, got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let diff = (g - w).abs();
            let allowed = (1e-4 * w.abs()).max(1e-5);
            let ratio = if diff.is_nan() {
                f64::INFINITY
            } else {
                diff / allowed
            };
            if ratio > self.ratio {
                self.ratio = ratio;
                self.at = format!("{what}[{i}]: got {g}, want {w}");
            }
            self.abs = self.abs.max(diff);
        }
    }
}

fn model(x: &Tensor, t: f64) -> Tensor {
    // diffusers computes t / 100 on a float32 timestep.
    let shift = f64::from(t as f32 / 100.0f32);
    let arg = x.affine(3.0, shift).unwrap();
    (x.affine(0.1, 0.0).unwrap() + arg.cos().unwrap().affine(0.05, 0.0).unwrap()).unwrap()
}

/// Replays a reference run's noise: the k-th draw returns the k-th tensor it drew.
struct ReplayedNoise {
    draws: Vec<Vec<f64>>,
    next: usize,
}

impl NoiseSource for ReplayedNoise {
    fn draw(&mut self, like: &Tensor) -> fresco_schedulers::Result<Tensor> {
        let drawn = self.draws.get(self.next).unwrap_or_else(|| {
            panic!(
                "draw {} is past the {} the reference drew",
                self.next,
                self.draws.len()
            )
        });
        assert_eq!(drawn.len(), like.elem_count(), "draw {}: size", self.next);
        self.next += 1;
        let values: Vec<f32> = drawn.iter().map(|v| *v as f32).collect();
        Ok(Tensor::from_vec(values, like.shape(), like.device())?.to_dtype(like.dtype())?)
    }
}

fn to_vec(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn run(file: &str, kind_name: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("{file}.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    let reference: Reference =
        serde_json::from_value(python_json_to_value(&text).unwrap()).unwrap();
    assert_eq!(reference.name, file);
    let config: SchedulerConfig = serde_json::from_value(reference.config.clone()).unwrap();
    let kind: SchedulerKind = by_name(kind_name).unwrap();
    let options = SetTimestepsOptions {
        mu: reference
            .set_timesteps_kwargs
            .get("mu")
            .and_then(serde_json::Value::as_f64),
        eta: reference
            .step_kwargs
            .get("eta")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0),
    };
    let mut scheduler = from_config(kind, &config, reference.num_inference_steps, options).unwrap();

    // Timesteps: exact after rounding where integral, else within 1e-3.
    let timesteps = scheduler.timesteps().to_vec();
    assert_eq!(
        timesteps.len(),
        reference.timesteps.len(),
        "{file}: timestep count"
    );
    let mut worst_t: f64 = 0.0;
    for (i, (g, w)) in timesteps.iter().zip(&reference.timesteps).enumerate() {
        if w.fract() == 0.0 {
            assert_eq!(g.round(), *w, "{file}: timestep {i}: got {g}, want {w}");
        } else {
            assert!(
                (g - w).abs() <= 1e-3,
                "{file}: timestep {i}: got {g}, want {w}"
            );
        }
        worst_t = worst_t.max((g - w).abs());
    }

    let mut worst_sigma = Worst::default();
    match (&reference.sigmas, scheduler.sigmas()) {
        (Some(want), Some(got)) => worst_sigma.check("sigmas", got, want),
        (None, None) => {}
        (want, got) => panic!("{file}: sigmas presence differs: want {want:?}, got {got:?}"),
    }
    let mut worst_init = Worst::default();
    worst_init.check(
        "init_noise_sigma",
        &[scheduler.init_noise_sigma()],
        &[reference.init_noise_sigma],
    );

    let n: usize = reference.shape.iter().product();
    let init: Vec<f32> = (0..n)
        .map(|i| {
            ((i as f64 * 0.7 + 0.3 + reference.offset).sin() * 1.5 * scheduler.init_noise_sigma())
                as f32
        })
        .collect();
    let mut x = Tensor::from_vec(init, reference.shape.as_slice(), &Device::Cpu).unwrap();
    let mut worst = Worst::default();
    worst.check("start", &to_vec(&x), &reference.start);

    assert_eq!(reference.after_each_step.len(), timesteps.len());
    let mut noise = reference
        .noise_per_step
        .clone()
        .map(|draws| ReplayedNoise { draws, next: 0 });
    for (i, want) in reference.after_each_step.iter().enumerate() {
        let x_in = scheduler.scale_model_input(&x, i).unwrap();
        let out = model(&x_in, timesteps[i]);
        let source = noise.as_mut().map(|n| n as &mut dyn NoiseSource);
        x = scheduler.step(&out, i, &x, source).unwrap();
        worst.check(&format!("step {i}"), &to_vec(&x), want);
    }
    if let Some(noise) = &noise {
        assert_eq!(
            noise.next,
            noise.draws.len(),
            "{file}: every drawn tensor used, once"
        );
    }
    worst.check("final", &to_vec(&x), &reference.final_sample);

    eprintln!(
        "REPORT {file}: timesteps max|d| {worst_t:.3e}; sigmas worst {:.3} of tol (max|d| {:.3e}); \
         init_noise_sigma |d| {:.3e}; samples worst {:.3} of tol (max|d| {:.3e}) at {}",
        worst_sigma.ratio, worst_sigma.abs, worst_init.abs, worst.ratio, worst.abs, worst.at
    );
    assert!(
        worst_init.ratio <= 1.0,
        "{file}: init_noise_sigma {worst_init:?}"
    );
    assert!(worst_sigma.ratio <= 1.0, "{file}: sigmas {worst_sigma:?}");
    assert!(worst.ratio <= 1.0, "{file}: samples {worst:?}");
}

#[test]
fn ddim_linear_seed_50() {
    run("ddim_linear_seed_50", "ddim");
}

#[test]
fn ddim_sd15_20() {
    run("ddim_sd15_20", "ddim");
}

#[test]
fn ddim_vpred_trailing_25() {
    run("ddim_vpred_trailing_25", "ddim");
}

#[test]
fn dpmpp_2m_20() {
    run("dpmpp_2m_20", "dpmpp_2m");
}

#[test]
fn dpmpp_2m_karras_25() {
    run("dpmpp_2m_karras_25", "dpmpp_2m_karras");
}

#[test]
fn euler_karras_25() {
    run("euler_karras_25", "euler");
}

#[test]
fn euler_sd15_30() {
    run("euler_sd15_30", "euler");
}

#[test]
fn flowmatch_flux_dynamic_20() {
    run("flowmatch_flux_dynamic_20", "flow_euler");
}

#[test]
fn flowmatch_sd3_28() {
    run("flowmatch_sd3_28", "flow_euler");
}

#[test]
fn heun_10() {
    run("heun_10", "heun");
}

#[test]
fn unipc_20() {
    run("unipc_20", "unipc");
}

#[test]
fn ddpm_sd15_25() {
    run("ddpm_sd15_25", "ddpm");
}

#[test]
fn ddpm_linear_vpred_20() {
    run("ddpm_linear_vpred_20", "ddpm");
}

#[test]
fn euler_a_sd15_20() {
    run("euler_a_sd15_20", "euler_a");
}

#[test]
fn ddim_eta05_20() {
    run("ddim_eta05_20", "ddim");
}
