//! Behaviour beyond the reference trajectories: the cosine beta schedule, seeded
//! stochastic steps (DDIM eta > 0 on F16, Euler ancestral, DDPM), config errors naming
//! their field, the name registry and step-index checks.

#![allow(
    clippy::unwrap_used,
    reason = "test crate: helpers panic on failure, like the #[test] functions calling them"
)]

use candle_core::{DType, Device, Tensor};
use fresco_schedulers::schedule;
use fresco_schedulers::{
    Error, NAMES, Scheduler, SchedulerConfig, SchedulerKind, SetTimestepsOptions, by_name,
    from_config,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn sd_config() -> SchedulerConfig {
    SchedulerConfig {
        beta_start: 0.00085,
        beta_end: 0.012,
        beta_schedule: "scaled_linear".into(),
        ..Default::default()
    }
}

fn initial(dtype: DType) -> Tensor {
    let v: Vec<f32> = (0..64)
        .map(|i| (i as f32 * 0.7 + 0.3).sin() * 1.5)
        .collect();
    Tensor::from_vec(v, (1, 4, 4, 4), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn model(x: &Tensor, t: f64) -> Tensor {
    let x32 = x.to_dtype(DType::F32).unwrap();
    let arg = x32.affine(3.0, t / 100.0).unwrap();
    let out =
        (x32.affine(0.1, 0.0).unwrap() + arg.cos().unwrap().affine(0.05, 0.0).unwrap()).unwrap();
    out.to_dtype(x.dtype()).unwrap()
}

/// Runs the whole loop; `seed` None passes no RNG.
fn sample(
    s: &mut dyn Scheduler,
    dtype: DType,
    seed: Option<u64>,
) -> fresco_schedulers::Result<Vec<f32>> {
    let mut rng = seed.map(ChaCha8Rng::seed_from_u64);
    let mut x = initial(dtype).affine(s.init_noise_sigma(), 0.0)?;
    let timesteps = s.timesteps().to_vec();
    for (i, &t) in timesteps.iter().enumerate() {
        let x_in = s.scale_model_input(&x, i)?;
        let out = model(&x_in, t);
        let rng_arg: Option<&mut dyn fresco_schedulers::NoiseSource> = match rng.as_mut() {
            Some(r) => Some(r),
            None => None,
        };
        x = s.step(&out, i, &x, rng_arg)?;
        assert_eq!(x.dtype(), dtype);
    }
    Ok(x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

fn build(
    kind: SchedulerKind,
    config: &SchedulerConfig,
    steps: usize,
    eta: f64,
) -> Box<dyn Scheduler> {
    from_config(
        kind,
        config,
        steps,
        SetTimestepsOptions {
            eta,
            ..Default::default()
        },
    )
    .unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn squaredcos_cap_v2_betas_are_nonzero_and_increasing() {
    let config = SchedulerConfig {
        beta_schedule: "squaredcos_cap_v2".into(),
        ..Default::default()
    };
    let betas = schedule::betas(&config).unwrap();
    assert_eq!(betas.len(), 1000);
    assert!(betas.iter().all(|&b| b > 0.0 && b <= 0.999));
    for w in betas.windows(2) {
        assert!(
            w[1] > w[0] || w[1] == 0.999,
            "not increasing: {} then {}",
            w[0],
            w[1]
        );
    }
    // Values of diffusers' betas_for_alpha_bar (cosine), computed in float arithmetic.
    assert!(
        (betas[0] - 4.128422482196914e-05).abs() < 1e-12,
        "{}",
        betas[0]
    );
    assert!(
        (betas[500] - 0.003155691441585007).abs() < 1e-12,
        "{}",
        betas[500]
    );
    assert!(
        (betas[998] - 0.7499993929011166).abs() < 1e-9,
        "{}",
        betas[998]
    );
    assert_eq!(betas[999], 0.999);
    // And a scheduler builds on it.
    let mut s = build(SchedulerKind::Ddim, &config, 20, 0.0);
    assert!(
        sample(s.as_mut(), DType::F32, None)
            .unwrap()
            .iter()
            .all(|v| v.is_finite())
    );
}

#[test]
fn ddim_eta_is_seeded_and_runs_on_f16() {
    let config = sd_config();
    let run = |eta: f64, seed: Option<u64>| {
        let mut s = build(SchedulerKind::Ddim, &config, 10, eta);
        sample(s.as_mut(), DType::F16, seed)
    };
    let a = run(0.5, Some(42)).unwrap();
    let b = run(0.5, Some(42)).unwrap();
    let c = run(0.5, Some(43)).unwrap();
    let deterministic = run(0.0, None).unwrap();
    assert!(a.iter().all(|v| v.is_finite()));
    assert_eq!(a, b, "same seed must give the same F16 result");
    assert!(
        max_diff(&a, &c) > 1e-2,
        "another seed must give another result"
    );
    assert!(
        max_diff(&a, &deterministic) > 1e-2,
        "eta > 0 must add noise"
    );
    // eta > 0 without an RNG is an error, not silent determinism.
    let mut s = build(SchedulerKind::Ddim, &config, 10, 0.5);
    assert!(matches!(
        sample(s.as_mut(), DType::F16, None),
        Err(Error::RngRequired { scheduler: "ddim" })
    ));
}

#[test]
fn ancestral_samplers_are_seeded() {
    for kind in [SchedulerKind::EulerAncestral, SchedulerKind::Ddpm] {
        let config = SchedulerConfig {
            clip_sample: Some(false),
            ..sd_config()
        };
        let run = |seed: Option<u64>| {
            let mut s = build(kind, &config, 15, 0.0);
            sample(s.as_mut(), DType::F32, seed)
        };
        let a = run(Some(7)).unwrap();
        let b = run(Some(7)).unwrap();
        let c = run(Some(8)).unwrap();
        assert!(a.iter().all(|v| v.is_finite()), "{kind}");
        assert_eq!(a, b, "{kind}: same seed, same result");
        assert!(
            max_diff(&a, &c) > 1e-3,
            "{kind}: different seeds must differ"
        );
        assert!(
            matches!(run(None), Err(Error::RngRequired { .. })),
            "{kind}"
        );
    }
}

fn field_of(result: fresco_schedulers::Result<Box<dyn Scheduler>>) -> &'static str {
    match result {
        Err(Error::InvalidConfig { field, rule }) => {
            let message = Error::InvalidConfig { field, rule }.to_string();
            assert!(
                message.contains(field),
                "message names the field: {message}"
            );
            field
        }
        Err(other) => panic!("expected InvalidConfig, got {other}"),
        Ok(s) => panic!("expected an error, got {s:?}"),
    }
}

#[test]
fn bad_config_values_name_their_field() {
    let base = sd_config();
    let opts = SetTimestepsOptions::default();
    let cases: Vec<(SchedulerKind, SchedulerConfig, usize, &str)> = vec![
        (
            SchedulerKind::Ddim,
            SchedulerConfig {
                beta_schedule: "cosine".into(),
                ..base.clone()
            },
            20,
            "beta_schedule",
        ),
        (
            SchedulerKind::Euler,
            SchedulerConfig {
                prediction_type: "noise".into(),
                ..base.clone()
            },
            20,
            "prediction_type",
        ),
        (
            SchedulerKind::Euler,
            SchedulerConfig {
                timestep_spacing: Some("even".into()),
                ..base.clone()
            },
            20,
            "timestep_spacing",
        ),
        (
            SchedulerKind::Ddim,
            SchedulerConfig {
                beta_start: 0.02,
                beta_end: 0.001,
                ..base.clone()
            },
            20,
            "beta_end",
        ),
        (
            SchedulerKind::Ddpm,
            SchedulerConfig {
                beta_start: -1.0,
                ..base.clone()
            },
            20,
            "beta_start",
        ),
        (
            SchedulerKind::Ddim,
            SchedulerConfig {
                trained_betas: Some(vec![0.01; 10]),
                ..base.clone()
            },
            20,
            "trained_betas",
        ),
        (SchedulerKind::Euler, base.clone(), 0, "num_inference_steps"),
        (
            SchedulerKind::Euler,
            base.clone(),
            1001,
            "num_inference_steps",
        ),
        (
            SchedulerKind::UniPc,
            SchedulerConfig {
                solver_order: 7,
                ..base.clone()
            },
            20,
            "solver_order",
        ),
        (
            SchedulerKind::DpmPp2m,
            SchedulerConfig {
                thresholding: true,
                ..base.clone()
            },
            20,
            "thresholding",
        ),
        (
            SchedulerKind::DpmPp2m,
            SchedulerConfig {
                final_sigmas_type: Some("one".into()),
                ..base.clone()
            },
            20,
            "final_sigmas_type",
        ),
        (
            SchedulerKind::Ddpm,
            SchedulerConfig {
                variance_type: Some("learned".into()),
                ..base.clone()
            },
            20,
            "variance_type",
        ),
        (
            SchedulerKind::FlowEuler,
            SchedulerConfig {
                use_dynamic_shifting: true,
                ..Default::default()
            },
            20,
            "mu",
        ),
        (
            SchedulerKind::FlowEuler,
            SchedulerConfig {
                shift: 0.0,
                ..Default::default()
            },
            20,
            "shift",
        ),
    ];
    for (kind, config, steps, want) in cases {
        assert_eq!(
            field_of(from_config(kind, &config, steps, opts)),
            want,
            "{kind}"
        );
    }
    let negative_eta = SetTimestepsOptions {
        eta: -0.1,
        ..Default::default()
    };
    assert_eq!(
        field_of(from_config(SchedulerKind::Ddim, &base, 20, negative_eta)),
        "eta"
    );
}

#[test]
fn config_reads_diffusers_json() {
    let text = r#"{"_class_name": "DPMSolverMultistepScheduler", "_diffusers_version": "0.42.1",
        "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
        "lambda_min_clipped": -Infinity, "note": "NaN in a string stays", "steps_offset": 1,
        "use_karras_sigmas": true, "final_sigmas_type": "zero"}"#;
    let config = SchedulerConfig::from_json_str(text).unwrap();
    assert_eq!(config.lambda_min_clipped, f64::NEG_INFINITY);
    assert_eq!(config.steps_offset, 1);
    assert!(config.use_karras_sigmas);
    assert_eq!(config.num_train_timesteps, 1000);
    assert!(SchedulerConfig::from_json_str(r#"{"steps_offset": "one"}"#).is_err());
    // FLUX's mu at 1024x1024 (4096 tokens) is max_shift.
    assert!((config.calculate_shift(4096) - 1.15).abs() < 1e-12);
    assert!((config.calculate_shift(256) - 0.5).abs() < 1e-12);
}

#[test]
fn registry_round_trips() {
    assert_eq!(NAMES.len(), SchedulerKind::all().len());
    for (name, kind) in NAMES.iter().zip(SchedulerKind::all()) {
        assert_eq!(by_name(name), Some(*kind));
        assert_eq!(kind.name(), *name);
        assert_eq!(name.parse::<SchedulerKind>().unwrap(), *kind);
    }
    assert_eq!(by_name("Euler"), None);
    assert_eq!(by_name("lms"), None);
    let err = "lms".parse::<SchedulerKind>().unwrap_err();
    assert!(matches!(err, Error::UnknownScheduler { .. }));
    assert!(err.to_string().contains("lms"));
}

#[test]
fn every_kind_samples_and_checks_indices() {
    let flow = SchedulerConfig {
        shift: 3.0,
        ..Default::default()
    };
    for &kind in SchedulerKind::all() {
        let config = if kind == SchedulerKind::FlowEuler {
            flow.clone()
        } else {
            sd_config()
        };
        let mut s = build(kind, &config, 12, 0.0);
        assert_eq!(s.kind(), kind);
        let out = sample(s.as_mut(), DType::F32, Some(1)).unwrap();
        assert!(out.iter().all(|v| v.is_finite()), "{kind}");
        let len = s.timesteps().len();
        let x = initial(DType::F32);
        assert!(
            matches!(
                s.scale_model_input(&x, len),
                Err(Error::StepIndexOutOfRange { index, len: l }) if index == len && l == len
            ),
            "{kind}"
        );
        assert!(
            matches!(
                s.step(&x, len, &x, None),
                Err(Error::StepIndexOutOfRange { .. })
            ),
            "{kind}"
        );
        let noise = initial(DType::F32);
        assert!(s.add_noise(&x, &noise, len).is_err(), "{kind}");
        assert_eq!(
            s.add_noise(&x, &noise, 0).unwrap().dims(),
            x.dims(),
            "{kind}"
        );
    }
}

#[test]
fn multistep_solvers_reject_out_of_order_steps_and_reset() {
    for kind in [
        SchedulerKind::Heun,
        SchedulerKind::DpmPp2m,
        SchedulerKind::UniPc,
    ] {
        let mut s = build(kind, &sd_config(), 10, 0.0);
        let x = initial(DType::F32);
        let out = model(&x, s.timesteps()[0]);
        s.step(&out, 0, &x, None).unwrap();
        assert!(
            matches!(
                s.step(&out, 3, &x, None),
                Err(Error::StepOutOfOrder {
                    expected: 1,
                    got: 3,
                    ..
                })
            ),
            "{kind}"
        );
        // After reset the same scheduler reproduces a fresh run.
        s.reset();
        let again = sample(s.as_mut(), DType::F32, None).unwrap();
        let mut fresh = build(kind, &sd_config(), 10, 0.0);
        assert_eq!(
            again,
            sample(fresh.as_mut(), DType::F32, None).unwrap(),
            "{kind}"
        );
    }
}
