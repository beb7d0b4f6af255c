//! The prompts-file parser on arbitrary bytes: the first byte picks the
//! format (text, JSON lines, CSV), the rest is the file. It must never
//! panic, and whatever it accepts holds at least one task, each with a
//! non-empty prompt.

#![no_main]

use fresco_core::prompts_file::{Format, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, file)) = data.split_first() else {
        return;
    };
    let format = match selector % 3 {
        0 => Format::Text,
        1 => Format::JsonLines,
        _ => Format::Csv,
    };
    if let Ok(tasks) = parse(file, format) {
        assert!(!tasks.is_empty(), "an accepted file holds a task");
        for task in &tasks {
            assert!(
                task.prompt.as_deref().is_some_and(|p| !p.is_empty()),
                "an accepted task has a prompt: {task:?}"
            );
        }
    }
});
