//! `fresco download --layout`: the file name of each image, from a
//! template such as `task-{task:05}-{image}.png` (the default) or
//! `{prompt_slug}/{seed}.png`. A field may carry a zero-padded width
//! (`{task:05}`); `{{` and `}}` are literal braces. A template that names
//! an unknown field, could leave the output folder (an absolute path or
//! `..`), or gives two images one name is refused before anything is
//! fetched.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use fresco_proto::v1 as pb;

/// The layout `fresco download` uses unless told otherwise.
pub const DEFAULT: &str = "task-{task:05}-{image}.png";

/// The fields a template may name, and what each holds.
pub const FIELDS: &[(&str, &str)] = &[
    ("job", "the job id"),
    ("task", "the task's index in the job"),
    ("task_id", "the task id"),
    ("image", "the image's index in its task"),
    (
        "seed",
        "the image's own seed (the one that renders it again alone)",
    ),
    (
        "prompt_slug",
        "the prompt, lower-case, words joined by '-', at most 60 characters",
    ),
    ("model", "the model id"),
    ("sampler", "the sampler"),
    ("steps", "the sampling steps"),
    ("guidance", "the guidance scale"),
    ("width", "the image width"),
    ("height", "the image height"),
];

/// The longest prompt slug, in characters.
const SLUG_MAX: usize = 60;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Field { name: String, width: usize },
}

impl Layout {
    /// Parses `template`; the error names what is wrong with it.
    pub fn parse(template: &str) -> Result<Layout, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let field: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(parse_field(&field)?);
                }
                '}' => return Err("a '}' without its '{' (write '}}' for a brace)".into()),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        if parts.is_empty() {
            return Err("the layout is empty".into());
        }
        Ok(Layout { parts })
    }

    /// The relative path of image `output` of `task`.
    pub fn path_of(&self, task: &pb::Task, output: &pb::Output) -> Result<PathBuf, String> {
        let values = values_of(task, output);
        let mut name = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => name.push_str(text),
                Part::Field { name: field, width } => {
                    let value = values.get(field.as_str()).map_or("", String::as_str);
                    name.push_str(&format!("{value:0>width$}"));
                }
            }
        }
        checked(&name)
    }
}

fn parse_field(field: &str) -> Result<Part, String> {
    let (name, width) = match field.split_once(':') {
        Some((name, spec)) => {
            let width = spec
                .strip_prefix('0')
                .and_then(|w| w.parse::<usize>().ok())
                .filter(|w| (1..=20).contains(w))
                .ok_or_else(|| {
                    format!(
                        "{{{field}}}: a width is written :0N with N from 1 to 20, as {{task:05}}"
                    )
                })?;
            (name, width)
        }
        None => (field, 0),
    };
    if !FIELDS.iter().any(|(known, _)| *known == name) {
        let known: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "unknown field {{{name}}}; the fields are {}",
            known.join(", ")
        ));
    }
    Ok(Part::Field {
        name: name.to_owned(),
        width,
    })
}

fn values_of(task: &pb::Task, output: &pb::Output) -> HashMap<&'static str, String> {
    HashMap::from([
        ("job", task.job_id.clone()),
        ("task", task.index.to_string()),
        ("task_id", task.id.clone()),
        ("image", output.index.to_string()),
        ("seed", output.seed.to_string()),
        ("prompt_slug", slug(&task.prompt)),
        ("model", task.model.clone()),
        ("sampler", task.sampler.clone()),
        ("steps", task.steps.to_string()),
        ("guidance", task.guidance.to_string()),
        ("width", output.width.to_string()),
        ("height", output.height.to_string()),
    ])
}

/// `prompt` as a file-name-safe slug: lower-case ASCII letters and digits,
/// runs of anything else become one '-'; "prompt" when nothing is left.
pub fn slug(prompt: &str) -> String {
    let mut slug = String::new();
    for c in prompt.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= SLUG_MAX {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "prompt".to_owned()
    } else {
        slug.to_owned()
    }
}

/// `name` as a path inside the output folder: relative, with no `..`, no
/// empty component.
fn checked(name: &str) -> Result<PathBuf, String> {
    let path = Path::new(name);
    let inside = !name.is_empty()
        && !name.ends_with('/')
        && !name.contains("//")
        && path.components().all(|c| matches!(c, Component::Normal(_)));
    if inside {
        Ok(path.to_owned())
    } else {
        Err(format!(
            "the layout gives {name:?}, which is not a file name inside the output folder"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> pb::Task {
        pb::Task {
            id: "t-id".into(),
            job_id: "j-id".into(),
            index: 7,
            prompt: "A red Circle, top-left!".into(),
            model: "fresco-shapes".into(),
            sampler: "euler".into(),
            steps: 20,
            guidance: 4.5,
            ..Default::default()
        }
    }

    fn output() -> pb::Output {
        pb::Output {
            index: 2,
            seed: 44,
            width: 64,
            height: 32,
            ..Default::default()
        }
    }

    fn path(template: &str) -> Result<PathBuf, String> {
        Layout::parse(template)?.path_of(&task(), &output())
    }

    #[test]
    fn the_default_names_images_as_before() {
        assert_eq!(path(DEFAULT).unwrap(), PathBuf::from("task-00007-2.png"));
    }

    #[test]
    fn fields_fill_in_with_their_width() {
        assert_eq!(
            path("{prompt_slug}/{seed}-{width}x{height}.png").unwrap(),
            PathBuf::from("a-red-circle-top-left/44-64x32.png")
        );
        assert_eq!(
            path("{job}/{task_id}/{image:03}-{{x}}.png").unwrap(),
            PathBuf::from("j-id/t-id/002-{x}.png")
        );
        assert_eq!(
            path("{model}-{sampler}-{steps}-{guidance}.png").unwrap(),
            PathBuf::from("fresco-shapes-euler-20-4.5.png")
        );
    }

    #[test]
    fn bad_templates_are_refused_saying_why() {
        assert!(
            path("{colour}.png")
                .unwrap_err()
                .contains("unknown field {colour}")
        );
        assert!(path("{task:5}.png").unwrap_err().contains(":0N"));
        assert!(path("a}.png").unwrap_err().contains("'}'"));
        assert!(path("").unwrap_err().contains("empty"));
        for outside in [
            "/tmp/{seed}.png",
            "../{seed}.png",
            "a/../../{seed}.png",
            "{seed}/",
        ] {
            assert!(
                path(outside)
                    .unwrap_err()
                    .contains("not a file name inside"),
                "{outside}"
            );
        }
    }

    #[test]
    fn slugs_are_safe_and_bounded() {
        assert_eq!(slug("  ...  "), "prompt");
        assert_eq!(slug("café au lait"), "caf-au-lait");
        assert!(slug(&"long words ".repeat(20)).len() <= SLUG_MAX);
    }
}
