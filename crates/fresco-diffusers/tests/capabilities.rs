//! The capability table (`fresco_core::capabilities`, read by the
//! coordinator's validation) against what the diffusers-format families can
//! actually build: every sampler a family is said to accept must be one
//! fresco-schedulers constructs, and the flow-matching families accept only
//! flow-matching samplers.

use fresco_pipeline::Family;
use fresco_schedulers::{SchedulerKind, by_name};

#[test]
fn every_sampler_a_diffusers_family_accepts_is_one_the_schedulers_build() {
    for family in [Family::StableDiffusion, Family::Sd3, Family::Flux] {
        for &sampler in family.capabilities().samplers {
            assert!(
                by_name(sampler).is_some(),
                "{family:?} accepts {sampler:?}, which fresco-schedulers does not build"
            );
        }
    }
}

#[test]
fn flow_matching_families_accept_only_flow_matching_samplers() {
    for family in [Family::Sd3, Family::Flux] {
        let samplers = family.capabilities().samplers;
        assert!(!samplers.is_empty(), "{family:?} accepts some sampler");
        for &sampler in samplers {
            assert_eq!(
                by_name(sampler),
                Some(SchedulerKind::FlowEuler),
                "{family:?} accepts {sampler:?}"
            );
        }
    }
    for &sampler in Family::StableDiffusion.capabilities().samplers {
        assert_ne!(
            by_name(sampler),
            Some(SchedulerKind::FlowEuler),
            "a UNet folder does not run the flow-matching sampler {sampler:?}"
        );
    }
}
