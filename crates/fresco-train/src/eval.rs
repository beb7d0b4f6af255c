//! Evaluation of a text-to-image model on the shapes task: a fixed prompt set
//! (combinations seen in training and held-out ones), `k` samples per prompt,
//! scored by [`fresco_shapes::Evaluator`]; the report as text or JSON, with each
//! prompt's own scores on request; plus a labelled grid PNG of the samples.

use std::ops::ControlFlow;
use std::path::Path;

use fresco_pipeline::{GenerateParams, Pipeline, derive_image_seed};
use fresco_shapes::image_io::{upscale, write_png};
use fresco_shapes::{Colour, EvalReport, Evaluator, Shape, Tally, is_held_out_combination};
use serde::Serialize;
use tracing::info;

use crate::error::{Error, Result};
use crate::font::{GLYPH_H, draw_text, text_width};

/// One evaluation prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvalPrompt {
    /// The prompt text, e.g. "a red circle on a white background".
    pub prompt: String,
    /// Whether the combination is held out of training.
    pub held_out: bool,
}

const SEEN: [(Shape, Colour, Colour); 14] = [
    (Shape::Circle, Colour::Red, Colour::White),
    (Shape::Circle, Colour::Blue, Colour::Black),
    (Shape::Square, Colour::Green, Colour::Gray),
    (Shape::Square, Colour::Yellow, Colour::White),
    (Shape::Triangle, Colour::Orange, Colour::Black),
    (Shape::Triangle, Colour::Cyan, Colour::White),
    (Shape::Diamond, Colour::Pink, Colour::Gray),
    (Shape::Diamond, Colour::Purple, Colour::White),
    (Shape::Star, Colour::Yellow, Colour::Gray),
    (Shape::Star, Colour::Blue, Colour::White),
    (Shape::Cross, Colour::Red, Colour::Black),
    (Shape::Cross, Colour::Green, Colour::White),
    (Shape::Ring, Colour::Purple, Colour::Gray),
    (Shape::Ring, Colour::Orange, Colour::White),
];

const HELD_OUT: [(Shape, Colour, Colour); 6] = [
    (Shape::Triangle, Colour::Purple, Colour::White),
    (Shape::Triangle, Colour::Purple, Colour::Gray),
    (Shape::Star, Colour::Orange, Colour::Black),
    (Shape::Ring, Colour::Green, Colour::White),
    (Shape::Circle, Colour::Yellow, Colour::Black),
    (Shape::Diamond, Colour::Yellow, Colour::Black),
];

/// The evaluation's prompt form: "a red circle on a white background".
pub(crate) fn prompt_text(shape: Shape, colour: Colour, background: Colour) -> String {
    let article = |w: &str| {
        if w.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        }
    };
    format!(
        "{} {} {} on {} {} background",
        article(colour.word()),
        colour.word(),
        shape.word(),
        article(background.word()),
        background.word()
    )
}

/// The fixed prompt set: 14 seen combinations (two per shape), then 6 held-out ones.
pub fn eval_prompts() -> Vec<EvalPrompt> {
    SEEN.iter()
        .chain(HELD_OUT.iter())
        .map(|&(s, c, b)| EvalPrompt {
            prompt: prompt_text(s, c, b),
            held_out: is_held_out_combination(Some(s), Some(c), Some(b)),
        })
        .collect()
}

/// A prompt set read from text: one prompt per line; blank lines and lines
/// starting with `#` are skipped. Whether a prompt is held out follows from the
/// attributes it names ([`fresco_shapes::parse_prompt`]). Every prompt must
/// name a colour and a shape, or it could not be scored.
pub fn parse_prompt_list(text: &str) -> Result<Vec<EvalPrompt>> {
    let mut prompts = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let prompt = line.trim();
        if prompt.is_empty() || prompt.starts_with('#') {
            continue;
        }
        let attrs = fresco_shapes::parse_prompt(prompt);
        if attrs.colour.is_none() || attrs.shape.is_none() {
            return Err(Error::Options(format!(
                "prompt on line {}, {prompt:?}: must name a colour and a shape",
                n + 1
            )));
        }
        prompts.push(EvalPrompt {
            prompt: prompt.to_owned(),
            held_out: attrs.is_held_out(),
        });
    }
    if prompts.is_empty() {
        return Err(Error::Options("the prompt list holds no prompts".into()));
    }
    Ok(prompts)
}

/// Sampling settings of an evaluation.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Images per prompt.
    pub k: u32,
    /// Sampler steps.
    pub steps: u32,
    /// Classifier-free guidance scale.
    pub guidance: f32,
    /// Evaluation seed (prompt `i` uses task seed `derive_image_seed(seed, i)`).
    pub seed: u64,
    /// Image side.
    pub size: u32,
    /// Sampler name ("euler" or "heun").
    pub sampler: String,
}

/// How the images of one prompt scored, to see which prompts a model misses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptScore {
    /// The prompt.
    #[serde(flatten)]
    pub prompt: EvalPrompt,
    /// Its images' accuracy counts.
    pub tally: Tally,
    /// The shape the analyzer read from each image, in order (`None`: no
    /// shape it could name).
    pub shapes: Vec<Option<Shape>>,
}

/// Samples and scores of an evaluation.
#[derive(Debug, Clone)]
pub struct EvalOutput {
    /// The accuracy / diversity report.
    pub report: EvalReport,
    /// Per prompt, in prompt order: how its images scored.
    pub per_prompt: Vec<PromptScore>,
    /// Per prompt: the prompt and its RGB8 images.
    pub samples: Vec<(EvalPrompt, Vec<Vec<u8>>)>,
    /// Image side.
    pub size: u32,
}

/// Generates `opts.k` images for every prompt and scores them.
pub fn evaluate(
    pipeline: &dyn Pipeline,
    prompts: &[EvalPrompt],
    opts: &EvalOptions,
) -> Result<EvalOutput> {
    let mut evaluator = Evaluator::new();
    let mut samples = Vec::with_capacity(prompts.len());
    let mut per_prompt = Vec::with_capacity(prompts.len());
    for (i, p) in prompts.iter().enumerate() {
        let params = GenerateParams {
            prompt: p.prompt.clone(),
            negative_prompt: String::new(),
            seed: derive_image_seed(opts.seed, u32::try_from(i).unwrap_or(u32::MAX)),
            steps: opts.steps,
            width: opts.size,
            height: opts.size,
            guidance: opts.guidance,
            n: opts.k,
            sampler: opts.sampler.clone(),
            schedule: Default::default(),
        };
        let images = pipeline.generate(&params, &mut |_| ControlFlow::Continue(()))?;
        let mut rgbs = Vec::with_capacity(images.len());
        let mut this_prompt = Evaluator::new();
        let wanted = fresco_shapes::parse_prompt(&p.prompt);
        let mut shapes = Vec::with_capacity(images.len());
        for img in images {
            let analysis = evaluator.add(&p.prompt, &img.rgb, img.width, img.height)?;
            this_prompt.record(&wanted, &analysis);
            shapes.push(analysis.shape);
            rgbs.push(img.rgb);
        }
        per_prompt.push(PromptScore {
            prompt: p.clone(),
            tally: this_prompt.report().overall(),
            shapes,
        });
        info!(prompt = %p.prompt, held_out = p.held_out, "sampled");
        samples.push((p.clone(), rgbs));
    }
    Ok(EvalOutput {
        report: evaluator.report(),
        per_prompt,
        samples,
        size: opts.size,
    })
}

/// A Markdown table of `scores`: one row per prompt (held-out prompts marked
/// `*`), with its colour, shape and background accuracy and the shape read
/// from each image (`–`: none the analyzer could name).
pub fn per_prompt_table(scores: &[PromptScore]) -> String {
    let mut out = String::from(
        "| prompt | images | colour | shape | background | shapes read |\n\
         |---|---:|---:|---:|---:|---|\n",
    );
    for s in scores {
        let shapes: Vec<&str> = s
            .shapes
            .iter()
            .map(|shape| shape.map_or("–", Shape::word))
            .collect();
        out.push_str(&format!(
            "| {}{} | {} | {} | {} | {} | {} |\n",
            if s.prompt.held_out { "* " } else { "" },
            s.prompt.prompt,
            s.tally.images,
            s.tally.colour,
            s.tally.shape,
            s.tally.background,
            shapes.join(" ")
        ));
    }
    out
}

/// The report as pretty-printed JSON: the fields of [`EvalReport`], and with
/// `per_prompt` also a `per_prompt` array holding each prompt's text, whether
/// it is held out, its accuracy counts and the shape read from each image.
pub fn report_json(out: &EvalOutput, per_prompt: bool) -> Result<String> {
    #[derive(Serialize)]
    struct Json<'a> {
        #[serde(flatten)]
        report: &'a EvalReport,
        #[serde(skip_serializing_if = "Option::is_none")]
        per_prompt: Option<&'a [PromptScore]>,
    }
    let json = Json {
        report: &out.report,
        per_prompt: per_prompt.then_some(out.per_prompt.as_slice()),
    };
    Ok(serde_json::to_string_pretty(&json)?)
}

/// Writes the samples as a grid PNG: one row per prompt, labelled with the prompt
/// (held-out prompts marked `*` in orange), images magnified `scale` times.
pub fn write_grid(out: &EvalOutput, path: &Path, scale: u32) -> Result<()> {
    let rows: Vec<GridRow<'_>> = out
        .samples
        .iter()
        .map(|(p, images)| GridRow {
            label: format!("{}{}", if p.held_out { "* " } else { "" }, p.prompt),
            highlight: p.held_out,
            images,
        })
        .collect();
    write_labelled_grid(&rows, out.size, path, scale)
}

/// One labelled row of a grid PNG.
pub(crate) struct GridRow<'a> {
    /// Text drawn left of the images.
    pub label: String,
    /// Draw the label in orange instead of light gray.
    pub highlight: bool,
    /// Row-major RGB8 images, `size × size` each.
    pub images: &'a [Vec<u8>],
}

/// Writes `rows` as a grid PNG, images magnified `scale` times.
pub(crate) fn write_labelled_grid(
    rows: &[GridRow<'_>],
    size: u32,
    path: &Path,
    scale: u32,
) -> Result<()> {
    let scale = scale.clamp(1, 16);
    let side = (size * scale) as usize;
    let gap = 4usize;
    let cols = rows.iter().map(|r| r.images.len()).max().unwrap_or(0);
    if cols == 0 {
        return Err(Error::Options("no images to put in a grid".into()));
    }
    let label_w = rows.iter().map(|r| text_width(&r.label)).max().unwrap_or(0) + 2 * gap;
    let row_h = side.max(GLYPH_H) + gap;
    let width = label_w + cols * (side + gap) + gap;
    let height = rows.len() * row_h + gap;
    let mut canvas = vec![30u8; width * height * 3];
    for (r, row) in rows.iter().enumerate() {
        let y0 = gap + r * row_h;
        let colour = if row.highlight {
            [255, 170, 60]
        } else {
            [230, 230, 230]
        };
        draw_text(
            &mut canvas,
            width,
            gap,
            y0 + (side.saturating_sub(GLYPH_H)) / 2,
            &row.label,
            colour,
        );
        for (c, rgb) in row.images.iter().enumerate() {
            let big = upscale(rgb, size, size, scale)?;
            let x0 = label_w + c * (side + gap);
            for y in 0..side {
                let dst = ((y0 + y) * width + x0) * 3;
                canvas[dst..dst + side * 3].copy_from_slice(&big[y * side * 3..(y + 1) * side * 3]);
            }
        }
    }
    let (w, h) = (
        u32::try_from(width).map_err(|_| Error::Options("grid too wide".into()))?,
        u32::try_from(height).map_err(|_| Error::Options("grid too tall".into()))?,
    );
    write_png(path, &canvas, w, h)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fresco_pipeline::GeneratedImage;

    /// A stand-in model that draws one fixed 32×32 picture for every prompt.
    struct FixedImage(Vec<u8>);

    impl Pipeline for FixedImage {
        fn model_id(&self) -> &str {
            "fixed-image"
        }
        fn samplers(&self) -> &'static [&'static str] {
            &["euler"]
        }
        fn memory_bytes(&self) -> u64 {
            0
        }
        fn generate(
            &self,
            params: &GenerateParams,
            _: &mut dyn FnMut(fresco_pipeline::Progress) -> ControlFlow<()>,
        ) -> fresco_pipeline::Result<Vec<GeneratedImage>> {
            Ok((0..params.n)
                .map(|index| GeneratedImage {
                    index,
                    seed: params.seed,
                    width: 32,
                    height: 32,
                    rgb: self.0.clone(),
                })
                .collect())
        }
    }

    #[test]
    fn a_prompt_list_reads_one_prompt_per_line_and_marks_held_out_ones() {
        let text = "# layout named\na large red circle on a white background in the centre\n\n  a purple triangle in the top left  \n";
        let prompts = parse_prompt_list(text).unwrap();
        assert_eq!(
            prompts,
            vec![
                EvalPrompt {
                    prompt: "a large red circle on a white background in the centre".into(),
                    held_out: false,
                },
                EvalPrompt {
                    prompt: "a purple triangle in the top left".into(),
                    held_out: true,
                },
            ]
        );
        let err = parse_prompt_list("a red circle\na cat on a mat\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(parse_prompt_list("# nothing\n\n").is_err());
    }

    /// Each prompt's row counts only its own images, and names the shape read
    /// from each, so the prompts a model misses can be told apart.
    #[test]
    fn per_prompt_scores_count_each_prompts_own_images() {
        let ds = fresco_shapes::Dataset::new(3, 32, fresco_shapes::Split::All).unwrap();
        let circle = ds
            .iter_from(0)
            .map(|s| s.unwrap())
            .find(|s| s.scene.shape == Shape::Circle && !s.scene.is_held_out())
            .unwrap();
        let s = circle.scene;
        let prompt = EvalPrompt {
            prompt: prompt_text(s.shape, s.colour, s.background),
            held_out: false,
        };
        let square = EvalPrompt {
            prompt: prompt_text(Shape::Square, s.colour, s.background),
            held_out: false,
        };
        // A "model" that draws this circle whatever it is asked.
        let model = FixedImage(circle.rgb.clone());
        let opts = EvalOptions {
            k: 2,
            steps: 1,
            guidance: 1.0,
            seed: 1,
            size: 32,
            sampler: "euler".into(),
        };
        let out = evaluate(&model, &[prompt.clone(), square.clone()], &opts).unwrap();
        let [right, wrong] = &out.per_prompt[..] else {
            panic!("{:?}", out.per_prompt);
        };
        assert_eq!((&right.prompt, &wrong.prompt), (&prompt, &square));
        assert_eq!(
            right.tally.shape,
            fresco_shapes::Ratio {
                correct: 2,
                total: 2
            }
        );
        assert_eq!(
            wrong.tally.shape,
            fresco_shapes::Ratio {
                correct: 0,
                total: 2
            }
        );
        assert_eq!(
            wrong.tally.colour,
            fresco_shapes::Ratio {
                correct: 2,
                total: 2
            }
        );
        assert_eq!(right.shapes, vec![Some(Shape::Circle); 2]);
        assert_eq!(
            out.report.seen.shape,
            fresco_shapes::Ratio {
                correct: 2,
                total: 4
            }
        );
        let table = per_prompt_table(&out.per_prompt);
        let square_row = table.lines().find(|l| l.contains(&square.prompt)).unwrap();
        assert!(
            square_row.ends_with("| 0.0% | 100.0% | circle circle |"),
            "{square_row}"
        );

        let plain: serde_json::Value =
            serde_json::from_str(&report_json(&out, false).unwrap()).unwrap();
        assert_eq!(plain, serde_json::to_value(&out.report).unwrap());
        let rows: serde_json::Value =
            serde_json::from_str(&report_json(&out, true).unwrap()).unwrap();
        assert_eq!(rows["seen"], plain["seen"]);
        let square_json = &rows["per_prompt"][1];
        assert_eq!(square_json["prompt"], square.prompt.as_str());
        assert_eq!(square_json["held_out"], false);
        assert_eq!(square_json["tally"]["shape"]["correct"], 0);
        assert_eq!(square_json["tally"]["colour"]["correct"], 2);
        assert_eq!(
            square_json["shapes"],
            serde_json::json!(["circle", "circle"])
        );
    }

    #[test]
    fn prompt_set_splits_seen_and_held_out_as_the_dataset_does() {
        let prompts = eval_prompts();
        assert_eq!(prompts.len(), 20);
        assert_eq!(prompts.iter().filter(|p| p.held_out).count(), 6);
        for p in &prompts {
            let attrs = fresco_shapes::parse_prompt(&p.prompt);
            assert_eq!(attrs.is_held_out(), p.held_out, "{}", p.prompt);
            assert!(attrs.colour.is_some() && attrs.shape.is_some() && attrs.background.is_some());
        }
        assert_eq!(
            prompts[4].prompt,
            "an orange triangle on a black background"
        );
    }
}
