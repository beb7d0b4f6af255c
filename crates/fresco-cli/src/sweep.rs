//! `fresco submit` sweeps: parsing the axis flags (`--seeds 1-4,10`,
//! `--size 512x512,768x512`, and lists given to `--guidance`, `--steps`
//! and `--sampler`) and turning them, with the prompts, into the request's
//! `Sweep`, which the coordinator expands into tasks.
//!
//! A submission is a sweep when it gives `--seeds` or `--size`, or two or
//! more values to `--guidance`, `--steps` or `--sampler`. Then the
//! prompts (flags and file) are the prompt axis, every flag given a list
//! is an axis, and a flag given one value stays a job default.

use fresco_core::sweep::Size;
use fresco_proto::v1 as pb;

use crate::Failure;
use crate::args::SubmitArgs;

/// The most seeds one `--seeds` may name.
pub const MAX_SEEDS: u64 = 1_000_000;

/// The seeds `--seeds` names, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeds(pub Vec<u64>);

/// Parses `--seeds`: comma-separated seeds and inclusive ranges `A-B`
/// (`1-8`, `1,5,9`, `1-4,10`).
pub fn seeds(value: &str) -> Result<Seeds, String> {
    let mut seeds = Vec::new();
    for item in value.split(',').map(str::trim) {
        let (first, last) = match item.split_once('-') {
            Some((first, last)) => (seed(first, item)?, seed(last, item)?),
            None => {
                let only = seed(item, item)?;
                (only, only)
            }
        };
        if first > last {
            return Err(format!(
                "{item:?} is a range that goes down; write it as {last}-{first}"
            ));
        }
        let count = (last - first).saturating_add(1);
        if seeds.len() as u64 + count > MAX_SEEDS {
            return Err(format!("names more than {MAX_SEEDS} seeds"));
        }
        seeds.extend(first..=last);
    }
    Ok(Seeds(seeds))
}

/// One seed of `item`.
fn seed(text: &str, item: &str) -> Result<u64, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "{item:?} is not a seed (0 to {}) or a range of seeds such as 1-8",
            u64::MAX
        )
    })
}

/// Parses one `--size` value: `WIDTHxHEIGHT`, e.g. `768x512`.
pub fn size(value: &str) -> Result<Size, String> {
    let refuse = || format!("{value:?} is not a size: write WIDTHxHEIGHT, e.g. 768x512");
    let (width, height) = value.trim().split_once(['x', 'X']).ok_or_else(refuse)?;
    Ok(Size {
        width: width.trim().parse().map_err(|_| refuse())?,
        height: height.trim().parse().map_err(|_| refuse())?,
    })
}

/// Whether the flags make the submission a sweep.
pub fn is_sweep(args: &SubmitArgs) -> bool {
    args.seeds.is_some()
        || !args.sizes.is_empty()
        || args.steps.len() > 1
        || args.guidance.len() > 1
        || args.sampler.len() > 1
}

/// A flag's job default: its value when it was given exactly one.
pub fn single<T: Clone>(values: &[T]) -> Option<T> {
    match values {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// A flag's axis: its values when it was given several.
fn listed<T: Clone>(values: &[T]) -> Vec<T> {
    if values.len() > 1 {
        values.to_vec()
    } else {
        Vec::new()
    }
}

/// The sweep the flags describe over `prompts` (those of `--prompt`, then
/// those of the prompts file, whose entries may set only a prompt and a
/// negative prompt).
pub fn sweep_of(args: &SubmitArgs, prompts: &[pb::TaskParams]) -> Result<pb::Sweep, Failure> {
    Ok(pb::Sweep {
        prompts: prompts
            .iter()
            .enumerate()
            .map(|(i, entry)| sweep_prompt(entry, (i + 1).saturating_sub(args.prompts.len())))
            .collect::<Result<_, _>>()?,
        seeds: args.seeds.clone().map(|s| s.0).unwrap_or_default(),
        guidance: listed(&args.guidance),
        steps: listed(&args.steps),
        samplers: listed(&args.sampler),
        sizes: args
            .sizes
            .iter()
            .map(|s| pb::Size {
                width: s.width,
                height: s.height,
            })
            .collect(),
    })
}

/// One prompt of the sweep; `entry` is the prompts file's `entry`-th (0:
/// a `--prompt` flag).
fn sweep_prompt(params: &pb::TaskParams, entry: usize) -> Result<pb::SweepPrompt, Failure> {
    let set = fields_set(params);
    if let Some(field) = set.first() {
        return Err(Failure::Invalid(format!(
            "prompts file entry {entry} sets {field}: in a sweep a prompt sets only prompt and \
             negative_prompt; give {field} for the whole job as a flag (a list of values sweeps it)"
        )));
    }
    Ok(pb::SweepPrompt {
        prompt: params.prompt.clone().unwrap_or_default(),
        negative_prompt: params.negative_prompt.clone(),
    })
}

/// The fields of `params` other than the prompts that are set.
fn fields_set(params: &pb::TaskParams) -> Vec<&'static str> {
    [
        ("seed", params.seed.is_some()),
        ("steps", params.steps.is_some()),
        ("width", params.width.is_some()),
        ("height", params.height.is_some()),
        ("guidance", params.guidance.is_some()),
        ("n", params.n.is_some()),
        ("sampler", params.sampler.is_some()),
        ("schedule knobs", params.schedule.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_lists_and_ranges_in_the_order_given() {
        assert_eq!(seeds("1-8"), Ok(Seeds((1..=8).collect())));
        assert_eq!(seeds("1,5,9"), Ok(Seeds(vec![1, 5, 9])));
        assert_eq!(seeds("1-4,10"), Ok(Seeds(vec![1, 2, 3, 4, 10])));
        assert_eq!(seeds(" 7 , 3-3 "), Ok(Seeds(vec![7, 3])));
        assert_eq!(
            seeds("18446744073709551614-18446744073709551615"),
            Ok(Seeds(vec![u64::MAX - 1, u64::MAX]))
        );
    }

    #[test]
    fn malformed_seeds_are_refused_saying_why() {
        for bad in [
            "",
            "1,,2",
            "a",
            "-1",
            "1-",
            "-",
            "1-2-3",
            "1.5",
            "18446744073709551616",
        ] {
            let err = seeds(bad).expect_err(bad);
            assert!(err.contains("is not a seed"), "{bad:?}: {err}");
        }
        assert_eq!(
            seeds("8-1").unwrap_err(),
            "\"8-1\" is a range that goes down; write it as 1-8"
        );
        assert_eq!(
            seeds("0-18446744073709551615").unwrap_err(),
            "names more than 1000000 seeds"
        );
        assert!(seeds("1-1000000").is_ok());
        assert!(seeds("1-1000000,0").is_err());
    }

    #[test]
    fn sizes_are_width_by_height() {
        assert_eq!(
            size("768x512"),
            Ok(Size {
                width: 768,
                height: 512
            })
        );
        assert_eq!(
            size("64X32"),
            Ok(Size {
                width: 64,
                height: 32
            })
        );
        for bad in ["768", "x512", "768x", "768x512x2", "-8x8", "axb"] {
            assert!(size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lists_are_axes_and_single_values_are_defaults() {
        let mut args = SubmitArgs {
            guidance: vec![5.0],
            ..SubmitArgs::default()
        };
        assert!(!is_sweep(&args), "one guidance value is a job default");
        assert_eq!(single(&args.guidance), Some(5.0));
        args.steps = vec![20, 30];
        assert!(is_sweep(&args));
        assert_eq!(single(&args.steps), None);
        let prompt = pb::TaskParams {
            prompt: Some("a".into()),
            ..Default::default()
        };
        let sweep = sweep_of(&args, &[prompt]).expect("a sweep");
        assert_eq!(sweep.steps, [20, 30]);
        assert!(sweep.guidance.is_empty(), "a default, not an axis");
        assert_eq!(sweep.prompts[0].prompt, "a");
        let seeded = SubmitArgs {
            seeds: Some(Seeds(vec![3])),
            ..SubmitArgs::default()
        };
        assert!(is_sweep(&seeded), "--seeds always sweeps");
    }

    #[test]
    fn a_prompts_file_entry_that_sets_more_than_prompts_is_refused() {
        let args = SubmitArgs {
            prompts: vec!["from a flag".into()],
            seeds: Some(Seeds(vec![1, 2])),
            ..SubmitArgs::default()
        };
        let prompts = [
            pb::TaskParams {
                prompt: Some("from a flag".into()),
                ..Default::default()
            },
            pb::TaskParams {
                prompt: Some("fine".into()),
                negative_prompt: Some("blur".into()),
                ..Default::default()
            },
            pb::TaskParams {
                prompt: Some("too much".into()),
                guidance: Some(3.0),
                ..Default::default()
            },
        ];
        let Err(Failure::Invalid(message)) = sweep_of(&args, &prompts) else {
            panic!("refused as invalid");
        };
        assert!(
            message.starts_with("prompts file entry 2 sets guidance"),
            "{message}"
        );
        let sweep = sweep_of(&args, &prompts[..2]).expect("a sweep");
        assert_eq!(sweep.prompts[1].negative_prompt.as_deref(), Some("blur"));
    }
}
