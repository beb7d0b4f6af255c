//! Request validation on arbitrary protobuf bytes, decoded as the
//! coordinator decodes a `SubmitJobRequest`. It must never panic, and every
//! job it accepts keeps every rule it promises to enforce.

#![no_main]

use fresco_core::{Limits, validate};
use fresco_proto::v1::SubmitJobRequest;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = SubmitJobRequest::decode(data) else {
        return;
    };
    let limits = Limits::default();
    let mut seed = 0u64;
    let mut next_seed = || {
        seed += 1;
        seed
    };
    let Ok(spec) = validate::job_spec(
        &request,
        &limits,
        &|model| model == "tiny-random-dit",
        &mut next_seed,
    ) else {
        return;
    };
    assert_eq!(spec.model, "tiny-random-dit");
    assert!(!spec.tasks.is_empty() && spec.tasks.len() <= limits.max_tasks);
    assert!(spec.max_attempts >= 1 && spec.max_attempts <= limits.max_attempts);
    assert!(spec.priority.abs() <= limits.max_priority);
    let clean = |s: &str| !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t');
    assert!(clean(&spec.name) && clean(&spec.owner));
    for task in &spec.tasks {
        assert!(!task.prompt.is_empty() && clean(&task.prompt), "{task:?}");
        assert!(task.prompt.chars().count() <= limits.max_prompt_chars);
        assert!(clean(&task.negative_prompt));
        assert!((1..=limits.max_steps).contains(&task.steps), "{task:?}");
        assert!((1..=limits.max_n).contains(&task.n), "{task:?}");
        for side in [task.width, task.height] {
            assert!(side > 0 && side % limits.side_multiple == 0 && side <= limits.max_side);
        }
        assert!(task.guidance.is_finite() && (0.0..=limits.max_guidance).contains(&task.guidance));
        assert!(fresco_core::capabilities::all_samplers().contains(&task.sampler.as_str()));
    }
});
