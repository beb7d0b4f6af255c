//! Reads prompt files for bulk submissions.
//!
//! - `.txt`: one prompt a line; blank lines and lines starting with `#` are skipped.
//! - `.jsonl`: one JSON object a line with `prompt` and, optionally, any of
//!   `negative_prompt`, `seed`, `steps`, `width`, `height`, `guidance`, `n`,
//!   `sampler` and the schedule knobs `num_train_timesteps`, `beta_start`,
//!   `beta_end`, `beta_schedule`, `prediction_type`, `timestep_spacing`,
//!   `karras_sigmas`, `flow_shift`, `eta`; blank lines are skipped.
//! - `.csv`: a header naming a `prompt` column and, optionally, the same
//!   parameter columns; an empty cell leaves the parameter unset.
//!
//! Errors name the line (1-based) and what is wrong with it.

use std::path::Path;

use fresco_proto::v1::TaskParams;
use serde::Deserialize;

use crate::schedule::Schedule;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PromptsFileError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("{0}")]
    File(String),
}

fn at(line: usize, message: impl Into<String>) -> PromptsFileError {
    PromptsFileError::Line {
        line,
        message: message.into(),
    }
}

/// The formats a prompts file may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    JsonLines,
    Csv,
}

impl Format {
    /// The format a file name's extension names.
    pub fn from_path(path: &Path) -> Result<Self, PromptsFileError> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("txt") => Ok(Format::Text),
            Some("jsonl") | Some("ndjson") => Ok(Format::JsonLines),
            Some("csv") => Ok(Format::Csv),
            _ => Err(PromptsFileError::File(format!(
                "{}: unknown prompts file type (expected .txt, .jsonl or .csv)",
                path.display()
            ))),
        }
    }
}

/// One task's parameters as a JSONL line or CSV row may give them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    prompt: Option<String>,
    negative_prompt: Option<String>,
    seed: Option<u64>,
    steps: Option<u32>,
    width: Option<u32>,
    height: Option<u32>,
    guidance: Option<f32>,
    n: Option<u32>,
    sampler: Option<String>,
    num_train_timesteps: Option<u32>,
    beta_start: Option<f64>,
    beta_end: Option<f64>,
    beta_schedule: Option<String>,
    prediction_type: Option<String>,
    timestep_spacing: Option<String>,
    karras_sigmas: Option<bool>,
    flow_shift: Option<f64>,
    eta: Option<f64>,
}

impl Line {
    fn into_params(self, line: usize) -> Result<TaskParams, PromptsFileError> {
        match &self.prompt {
            Some(p) if !p.trim().is_empty() => {}
            _ => return Err(at(line, "missing or empty \"prompt\"")),
        }
        Ok(TaskParams {
            prompt: self.prompt,
            negative_prompt: self.negative_prompt,
            seed: self.seed,
            steps: self.steps,
            width: self.width,
            height: self.height,
            guidance: self.guidance,
            n: self.n,
            sampler: self.sampler,
            schedule: Schedule {
                num_train_timesteps: self.num_train_timesteps,
                beta_start: self.beta_start,
                beta_end: self.beta_end,
                beta_schedule: self.beta_schedule,
                prediction_type: self.prediction_type,
                timestep_spacing: self.timestep_spacing,
                karras_sigmas: self.karras_sigmas,
                flow_shift: self.flow_shift,
                eta: self.eta,
            }
            .to_proto(),
        })
    }
}

/// Parses a prompts file's bytes.
pub fn parse(bytes: &[u8], format: Format) -> Result<Vec<TaskParams>, PromptsFileError> {
    let tasks = match format {
        Format::Text => parse_text(bytes)?,
        Format::JsonLines => parse_jsonl(bytes)?,
        Format::Csv => parse_csv(bytes)?,
    };
    if tasks.is_empty() {
        return Err(PromptsFileError::File("the file holds no prompts".into()));
    }
    Ok(tasks)
}

/// Reads and parses the file at `path`, its format from the extension.
pub fn read(path: &Path) -> Result<Vec<TaskParams>, PromptsFileError> {
    let format = Format::from_path(path)?;
    let bytes = std::fs::read(path)
        .map_err(|e| PromptsFileError::File(format!("{}: {e}", path.display())))?;
    parse(&bytes, format)
}

fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, Result<&str, PromptsFileError>)> {
    bytes.split(|b| *b == b'\n').enumerate().map(|(i, raw)| {
        let line = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        (
            line,
            std::str::from_utf8(raw).map_err(|e| at(line, format!("not valid UTF-8 ({e})"))),
        )
    })
}

fn parse_text(bytes: &[u8]) -> Result<Vec<TaskParams>, PromptsFileError> {
    let mut tasks = Vec::new();
    for (line, text) in lines(bytes) {
        let text = text?;
        let prompt = text.trim();
        if prompt.is_empty() || prompt.starts_with('#') {
            continue;
        }
        check_controls(line, prompt)?;
        tasks.push(TaskParams {
            prompt: Some(prompt.to_owned()),
            ..Default::default()
        });
    }
    Ok(tasks)
}

fn parse_jsonl(bytes: &[u8]) -> Result<Vec<TaskParams>, PromptsFileError> {
    let mut tasks = Vec::new();
    for (line, text) in lines(bytes) {
        let text = text?;
        if text.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(text).map_err(|e| at(line, e.to_string()))?;
        tasks.push(parsed.into_params(line)?);
    }
    Ok(tasks)
}

fn parse_csv(bytes: &[u8]) -> Result<Vec<TaskParams>, PromptsFileError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| at(1, format!("bad header: {e}")))?
        .clone();
    if !headers.iter().any(|h| h == "prompt") {
        return Err(at(1, "the header has no \"prompt\" column"));
    }
    let mut tasks = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            at(line, e.to_string())
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        // Empty cells mean "not set": drop them before deserialising.
        let fields: serde_json::Map<String, serde_json::Value> = headers
            .iter()
            .zip(record.iter())
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| Ok((name.to_owned(), csv_value(line, name, value)?)))
            .collect::<Result<_, PromptsFileError>>()?;
        let parsed: Line = serde_json::from_value(serde_json::Value::Object(fields))
            .map_err(|e| at(line, e.to_string()))?;
        tasks.push(parsed.into_params(line)?);
    }
    Ok(tasks)
}

/// A CSV cell as the JSON value its column expects.
fn csv_value(
    line: usize,
    column: &str,
    value: &str,
) -> Result<serde_json::Value, PromptsFileError> {
    match column {
        "prompt" | "negative_prompt" | "sampler" | "beta_schedule" | "prediction_type"
        | "timestep_spacing" => {
            check_controls(line, value)?;
            Ok(serde_json::Value::String(value.to_owned()))
        }
        "karras_sigmas" => match value {
            "true" => Ok(serde_json::Value::Bool(true)),
            "false" => Ok(serde_json::Value::Bool(false)),
            _ => Err(at(
                line,
                format!("column {column:?}: {value:?} is not true or false"),
            )),
        },
        _ => serde_json::from_str::<serde_json::Number>(value)
            .map(serde_json::Value::Number)
            .map_err(|_| {
                at(
                    line,
                    format!("column {column:?}: {value:?} is not a number"),
                )
            }),
    }
}

fn check_controls(line: usize, text: &str) -> Result<(), PromptsFileError> {
    match text.chars().find(|c| c.is_control() && *c != '\t') {
        Some(c) => Err(at(
            line,
            format!("control character U+{:04X} in text", c as u32),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_of(err: PromptsFileError) -> usize {
        match err {
            PromptsFileError::Line { line, .. } => line,
            other => panic!("expected a line error, got {other}"),
        }
    }

    #[test]
    fn text_skips_blanks_and_comments() {
        let tasks = parse(b"a red circle\n\n# note\r\n a blue square \n", Format::Text).unwrap();
        let prompts: Vec<_> = tasks.iter().map(|t| t.prompt.clone().unwrap()).collect();
        assert_eq!(prompts, ["a red circle", "a blue square"]);
    }

    #[test]
    fn jsonl_overrides_parameters() {
        let src = br#"{"prompt": "a", "seed": 5, "steps": 3, "width": 32, "height": 16, "guidance": 2.5, "negative_prompt": "b", "n": 2}

{"prompt": "c"}"#;
        let tasks = parse(src, Format::JsonLines).unwrap();
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[0].seed, Some(5));
        assert_eq!(tasks[0].steps, Some(3));
        assert_eq!(tasks[0].width, Some(32));
        assert_eq!(tasks[0].height, Some(16));
        assert_eq!(tasks[0].guidance, Some(2.5));
        assert_eq!(tasks[0].negative_prompt.as_deref(), Some("b"));
        assert_eq!(tasks[0].n, Some(2));
        assert_eq!(tasks[1].seed, None);
    }

    #[test]
    fn schedule_knobs_come_from_jsonl_keys_and_csv_columns() {
        let src = br#"{"prompt": "a", "sampler": "ddim", "eta": 0.5, "karras_sigmas": true, "beta_schedule": "linear"}
{"prompt": "b"}"#;
        let tasks = parse(src, Format::JsonLines).unwrap();
        let knobs = tasks[0].schedule.clone().unwrap();
        assert_eq!(knobs.eta, Some(0.5));
        assert_eq!(knobs.karras_sigmas, Some(true));
        assert_eq!(knobs.beta_schedule.as_deref(), Some("linear"));
        assert_eq!(tasks[1].schedule, None);

        let csv = b"prompt,flow_shift,karras_sigmas,timestep_spacing\na,3.0,false,trailing\nb,,,\n";
        let tasks = parse(csv, Format::Csv).unwrap();
        let knobs = tasks[0].schedule.clone().unwrap();
        assert_eq!(knobs.flow_shift, Some(3.0));
        assert_eq!(knobs.karras_sigmas, Some(false));
        assert_eq!(knobs.timestep_spacing.as_deref(), Some("trailing"));
        assert_eq!(tasks[1].schedule, None);
        let bad = parse(b"prompt,karras_sigmas\na,yes\n", Format::Csv).unwrap_err();
        assert_eq!(line_of(bad), 2);
    }

    #[test]
    fn jsonl_errors_name_the_line() {
        assert_eq!(
            line_of(parse(b"{\"prompt\":\"a\"}\n{oops", Format::JsonLines).unwrap_err()),
            2
        );
        assert_eq!(
            line_of(parse(b"{\"prompt\":\"a\",\"stepz\":3}", Format::JsonLines).unwrap_err()),
            1
        );
        assert_eq!(
            line_of(parse(b"{\"prompt\":\"\"}", Format::JsonLines).unwrap_err()),
            1
        );
        assert_eq!(
            line_of(parse(b"{\"prompt\":\"a\",\"steps\":-1}", Format::JsonLines).unwrap_err()),
            1
        );
        assert_eq!(
            line_of(parse(b"\n\n\xff\xfe", Format::JsonLines).unwrap_err()),
            3
        );
    }

    #[test]
    fn csv_reads_prompt_and_parameter_columns() {
        let src = b"prompt,seed,steps,guidance\n\"a red, circle\",1,4,\nblue,,,3.5\n";
        let tasks = parse(src, Format::Csv).unwrap();
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[0].prompt.as_deref(), Some("a red, circle"));
        assert_eq!(tasks[0].seed, Some(1));
        assert_eq!(tasks[0].guidance, None);
        assert_eq!(tasks[1].guidance, Some(3.5));
        assert_eq!(tasks[1].steps, None);
    }

    #[test]
    fn csv_errors_name_the_line() {
        assert_eq!(
            line_of(parse(b"text\nhello\n", Format::Csv).unwrap_err()),
            1
        );
        assert_eq!(
            line_of(parse(b"prompt,steps\na,1\nb,many\n", Format::Csv).unwrap_err()),
            3
        );
        assert_eq!(
            line_of(parse(b"prompt,color\na,red\n", Format::Csv).unwrap_err()),
            2
        );
    }

    #[test]
    fn control_characters_and_empty_files_are_refused() {
        assert_eq!(
            line_of(parse(b"ok\nbad\x07bell\n", Format::Text).unwrap_err()),
            2
        );
        assert!(matches!(
            parse(b"\n\n", Format::Text),
            Err(PromptsFileError::File(_))
        ));
    }

    #[test]
    fn format_comes_from_the_extension() {
        assert_eq!(
            Format::from_path(Path::new("p.JSONL")).unwrap(),
            Format::JsonLines
        );
        assert_eq!(Format::from_path(Path::new("p.csv")).unwrap(), Format::Csv);
        assert!(Format::from_path(Path::new("p.yaml")).is_err());
    }
}
