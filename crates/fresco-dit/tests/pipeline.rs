//! End-to-end tests of the built-in DiT pipeline, its built-in models and the
//! model cache over them, all on CPU.

// Helpers outside `#[test]` fns unwrap too; this whole file is test code.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use candle_core::Device;
use fresco_dit::{DitPipeline, builtin};
use fresco_pipeline::{
    Error, GenerateParams, GeneratedImage, ModelCache, Pipeline, Progress, image_seed,
};

fn tiny() -> &'static DitPipeline {
    static P: OnceLock<DitPipeline> = OnceLock::new();
    P.get_or_init(|| {
        DitPipeline::random(
            "tiny-random-dit",
            fresco_dit::DitConfig::tiny(),
            0x0F4E_5C00_0000_0001,
            &Device::Cpu,
        )
        .unwrap()
    })
}

/// A model cache over the DiT's built-in models.
fn builtin_cache(budget_bytes: u64) -> ModelCache {
    ModelCache::with_loader(budget_bytes, Device::Cpu, Box::new(builtin::load))
}

fn params() -> GenerateParams {
    GenerateParams {
        prompt: "a red cat sitting on a wooden table".into(),
        negative_prompt: String::new(),
        seed: 1234,
        steps: 4,
        width: 32,
        height: 32,
        guidance: 4.0,
        n: 1,
        sampler: "euler".into(),
        schedule: Default::default(),
    }
}

fn run(p: &GenerateParams) -> Vec<GeneratedImage> {
    tiny()
        .generate(p, &mut |_| ControlFlow::Continue(()))
        .unwrap()
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x.abs_diff(*y)))
        .sum::<f64>()
        / a.len() as f64
}

#[test]
fn registry_model_matches_direct_construction() {
    let from_registry = builtin::load("tiny-random-dit", &Device::Cpu).unwrap();
    let p = params();
    let a = from_registry
        .generate(&p, &mut |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!(a, run(&p));
    assert_eq!(from_registry.memory_bytes(), tiny().memory_bytes());
}

#[test]
fn output_shapes_for_several_sizes_and_counts() {
    for (w, h, n) in [(32, 32, 1), (64, 48, 2), (48, 64, 3), (8, 16, 1)] {
        let imgs = run(&GenerateParams {
            width: w,
            height: h,
            n,
            steps: 2,
            ..params()
        });
        assert_eq!(imgs.len(), n as usize);
        for (k, img) in imgs.iter().enumerate() {
            assert_eq!((img.width, img.height), (w, h));
            assert_eq!(img.rgb.len(), (w * h * 3) as usize);
            assert_eq!(img.index, k as u32);
            assert_eq!(img.seed, image_seed(1234, k as u64));
        }
    }
}

#[test]
fn images_are_not_degenerate() {
    let img = &run(&GenerateParams {
        width: 64,
        height: 64,
        ..params()
    })[0];
    let distinct: std::collections::HashSet<u8> = img.rgb.iter().copied().collect();
    assert!(
        distinct.len() > 64,
        "only {} distinct values",
        distinct.len()
    );
    let saturated = img.rgb.iter().filter(|&&v| v == 0 || v == 255).count();

    assert!(
        saturated < img.rgb.len() * 3 / 4,
        "{saturated} of {} pixels saturated",
        img.rgb.len()
    );
}

#[test]
fn deterministic_and_seed_sensitive() {
    let p = GenerateParams { n: 2, ..params() };
    let a = run(&p);
    let b = run(&p);
    assert_eq!(a, b);
    assert_ne!(a[0].rgb, a[1].rgb, "images of one task must differ");
    let c = run(&GenerateParams { seed: 1235, ..p });
    assert!(mean_abs_diff(&a[0].rgb, &c[0].rgb) > 5.0);
}

#[test]
fn any_image_of_a_batch_can_be_regenerated_alone() {
    let p = GenerateParams {
        n: 3,
        width: 40,
        height: 24,
        ..params()
    };
    let batch = run(&p);
    let alone = tiny()
        .generate_with_seeds(&p, &[image_seed(p.seed, 2)], &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(alone.len(), 1);
    assert_eq!(alone[0].seed, batch[2].seed);
    assert_eq!(alone[0].rgb, batch[2].rgb);
    // n = 1 reproduces image 0 of the batch.
    let first = run(&GenerateParams { n: 1, ..p.clone() });
    assert_eq!(first[0].rgb, batch[0].rgb);
    // Image 2's seed submitted alone with n = 1 reproduces image 2.
    let again = run(&GenerateParams {
        n: 1,
        seed: batch[2].seed,
        ..p.clone()
    });
    assert_eq!(again[0].seed, batch[2].seed);
    assert_eq!(again[0].rgb, batch[2].rgb);
}

#[test]
fn guidance_prompt_and_negative_prompt_change_the_image() {
    let base = run(&params())[0].rgb.clone();
    let g0 = run(&GenerateParams {
        guidance: 0.0,
        ..params()
    });
    let g7 = run(&GenerateParams {
        guidance: 7.0,
        ..params()
    });
    assert!(mean_abs_diff(&g0[0].rgb, &g7[0].rgb) > 5.0);
    let unguided = run(&GenerateParams {
        guidance: 1.0,
        ..params()
    });
    assert!(mean_abs_diff(&unguided[0].rgb, &g7[0].rgb) > 5.0);
    let neg = run(&GenerateParams {
        negative_prompt: "blurry dark ugly".into(),
        ..params()
    });
    assert!(mean_abs_diff(&base, &neg[0].rgb) > 5.0);
    let other_prompt = run(&GenerateParams {
        prompt: "a blue dragon flying over a castle at night".into(),
        ..params()
    });
    assert!(mean_abs_diff(&base, &other_prompt[0].rgb) > 5.0);
}

#[test]
fn heun_differs_from_euler_and_reports_every_step() {
    let euler = run(&params());
    let mut seen = Vec::new();
    let heun = tiny()
        .generate(
            &GenerateParams {
                sampler: "heun".into(),
                ..params()
            },
            &mut |p| {
                seen.push(p);
                ControlFlow::Continue(())
            },
        )
        .unwrap();
    assert_ne!(euler[0].rgb, heun[0].rgb);
    let want: Vec<Progress> = (1..=4).map(|step| Progress { step, total: 4 }).collect();
    assert_eq!(seen, want);
}

#[test]
fn break_cancels_after_that_step() {
    let mut calls = 0;
    let result = tiny().generate(
        &GenerateParams {
            steps: 8,
            ..params()
        },
        &mut |p| {
            calls += 1;
            if p.step == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    );
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    assert_eq!(calls, 3);
}

#[test]
fn bad_params_are_errors_not_panics() {
    let cases = [
        GenerateParams {
            width: 30,
            ..params()
        },
        GenerateParams {
            height: 0,
            ..params()
        },
        GenerateParams {
            width: 1024,
            ..params()
        },
        GenerateParams {
            steps: 0,
            ..params()
        },
        GenerateParams { n: 0, ..params() },
        GenerateParams {
            guidance: f32::NAN,
            ..params()
        },
    ];
    for p in cases {
        let r = tiny().generate(&p, &mut |_| ControlFlow::Continue(()));
        assert!(matches!(r, Err(Error::InvalidParams(_))), "{p:?}: {r:?}");
    }
    let r = tiny().generate(
        &GenerateParams {
            sampler: "ddim".into(),
            ..params()
        },
        &mut |_| ControlFlow::Continue(()),
    );
    assert!(matches!(r, Err(Error::UnknownSampler { .. })), "{r:?}");
}

/// The DiT is a flow-matching model: `flow_shift` moves its time grid (so the
/// pixels change), and the beta-schedule knobs are refused by name.
#[test]
fn flow_shift_is_read_and_beta_knobs_are_refused() {
    let with = |schedule: fresco_pipeline::Schedule| GenerateParams {
        schedule,
        ..params()
    };
    let shifted = run(&with(fresco_pipeline::Schedule {
        flow_shift: Some(3.0),
        ..Default::default()
    }));
    assert_ne!(shifted[0].rgb, run(&params())[0].rgb);
    let r = tiny().generate(
        &with(fresco_pipeline::Schedule {
            beta_schedule: Some("linear".into()),
            ..Default::default()
        }),
        &mut |_| ControlFlow::Continue(()),
    );
    match r {
        Err(Error::InvalidParams(msg)) => {
            assert!(
                msg.contains("flow_shift") && msg.contains("beta_schedule"),
                "{msg}"
            );
        }
        other => panic!("beta_schedule must be refused, got {other:?}"),
    }
}

#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn unknown_words_are_dropped_with_a_warning() {
    let logs = SharedBuf::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let with_unknown = tracing::subscriber::with_default(subscriber, || {
        run(&GenerateParams {
            prompt: "a red cat, xylophonequux! sitting on a wooden table".into(),
            ..params()
        })
    });
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains("xylophonequux"), "{logs}");
    // The unknown word is dropped, so the image equals the one without it.
    assert_eq!(with_unknown, run(&params()));
    // A prompt of only unknown words falls back to the null token (= empty prompt).
    assert_eq!(
        run(&GenerateParams {
            prompt: "qqqq zzzz".into(),
            ..params()
        }),
        run(&GenerateParams {
            prompt: String::new(),
            ..params()
        })
    );
}

#[test]
fn save_and_from_dir_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("my-dit");
    tiny().save(&model_dir).unwrap();
    assert!(model_dir.join("config.json").is_file());
    assert!(model_dir.join("model.safetensors").is_file());
    let loaded = DitPipeline::from_dir(&model_dir, &Device::Cpu).unwrap();
    assert_eq!(loaded.model_id(), "my-dit");
    assert_eq!(loaded.config(), tiny().config());
    assert_eq!(loaded.memory_bytes(), tiny().memory_bytes());
    let p = GenerateParams {
        n: 2,
        sampler: "heun".into(),
        ..params()
    };
    let a = loaded
        .generate(&p, &mut |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!(a, run(&p));
}

#[test]
fn from_dir_names_the_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    match DitPipeline::from_dir(dir.path(), &Device::Cpu) {
        Err(Error::MissingModelFile(p)) => assert!(p.ends_with("config.json"), "{p:?}"),
        other => panic!("expected MissingModelFile, got {other:?}"),
    }
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_string(tiny().config()).unwrap(),
    )
    .unwrap();
    let err = DitPipeline::from_dir(dir.path(), &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    assert!(matches!(err, Error::MissingModelFile(_)));
}

#[test]
fn from_dir_rejects_weights_of_another_shape() {
    let dir = tempfile::tempdir().unwrap();
    tiny().save(dir.path()).unwrap();
    let mut cfg = tiny().config().clone();
    cfg.hidden_size = 32;
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_string(&cfg).unwrap(),
    )
    .unwrap();
    let err = DitPipeline::from_dir(dir.path(), &Device::Cpu).unwrap_err();
    assert!(matches!(err, Error::Candle(_)), "{err:?}");
}

#[test]
fn cache_counts_hits_misses_and_evictions() {
    let one = tiny().memory_bytes();
    // Room for exactly one model.
    let cache = builtin_cache(one + one / 2);
    let a = cache.get("tiny-random-dit").unwrap();
    assert_eq!(a.model_id(), "tiny-random-dit");
    let a2 = cache.fetch("tiny-random-dit").unwrap();
    assert!(Arc::ptr_eq(&a, &a2.pipeline));
    assert!(a2.loaded_in.is_none(), "a hit loads nothing");
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.evictions), (1, 1, 0));
    assert!(s.load_seconds > 0.0);

    let b = cache.fetch("tiny-random-dit-b").unwrap();
    assert!(b.loaded_in.is_some(), "a miss tells how long its load took");
    assert_eq!(cache.loaded_models(), vec!["tiny-random-dit-b".to_owned()]);
    cache.get("tiny-random-dit").unwrap();
    assert_eq!(cache.loaded_models(), vec!["tiny-random-dit".to_owned()]);
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.evictions), (1, 3, 2));

    assert!(matches!(cache.get("nope"), Err(Error::UnknownModel(_))));
    assert_eq!(cache.loaded_models(), vec!["tiny-random-dit".to_owned()]);
}

#[test]
fn cache_keeps_lru_order_and_the_requested_model() {
    // A budget smaller than any model still keeps the one just asked for.
    let tight = builtin_cache(1);
    tight.get("tiny-random-dit").unwrap();
    assert_eq!(tight.loaded_models(), vec!["tiny-random-dit".to_owned()]);
    assert_eq!(tight.stats().evictions, 0);

    // Room for both: no evictions, most recently used first.
    let roomy = builtin_cache(u64::MAX);
    roomy.get("tiny-random-dit").unwrap();
    roomy.get("tiny-random-dit-b").unwrap();
    roomy.get("tiny-random-dit").unwrap();
    assert_eq!(
        roomy.loaded_models(),
        vec!["tiny-random-dit".to_owned(), "tiny-random-dit-b".to_owned()]
    );
    let s = roomy.stats();
    assert_eq!((s.hits, s.misses, s.evictions), (1, 2, 0));
    assert_eq!(roomy.used_bytes(), 2 * tiny().memory_bytes());
}

#[test]
fn small_guided_batch_is_fast_on_cpu() {
    let p = GenerateParams {
        width: 64,
        height: 64,
        steps: 8,
        n: 2,
        guidance: 5.0,
        ..params()
    };
    run(&p); // warm-up
    let started = Instant::now();
    let imgs = run(&p);
    let secs = started.elapsed().as_secs_f64();
    eprintln!("64x64, 8 steps, n=2, guided: {secs:.3}s");
    assert_eq!(imgs.len(), 2);
    // Generous bound: the target is well under a second; CI machines are shared.
    assert!(secs < 10.0, "took {secs}s");
}

#[test]
#[ignore = "slow: 512x512 (run with --ignored)"]
fn max_size_works() {
    let imgs = run(&GenerateParams {
        width: 512,
        height: 512,
        steps: 1,
        ..params()
    });
    assert_eq!(imgs[0].rgb.len(), 512 * 512 * 3);
}
