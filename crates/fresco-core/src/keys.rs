//! Object keys of outputs: `{prefix}/{job}/{task}/{attempt}/{index}.png`.
//!
//! The attempt is part of the key, so a retry never overwrites the files of
//! another attempt, and a completion names exactly the keys it wrote.

use crate::ids::{JobId, TaskId};

/// The key of image `index` of `task`'s attempt `attempt`, under `prefix`
/// (the path part of the storage URL, possibly empty).
pub fn output_key(prefix: &str, job: JobId, task: TaskId, attempt: u32, index: u32) -> String {
    let dir = attempt_dir(job, task, attempt);
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        format!("{dir}/{index}.png")
    } else {
        format!("{prefix}/{dir}/{index}.png")
    }
}

/// The part of every output key of one attempt that does not depend on the
/// storage prefix: `{job}/{task}/{attempt}`.
pub fn attempt_dir(job: JobId, task: TaskId, attempt: u32) -> String {
    format!("{job}/{task}/{attempt}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_job_task_attempt_and_index() {
        let job = JobId::new();
        let task = TaskId::new();
        assert_eq!(
            output_key("renders/", job, task, 2, 1),
            format!("renders/{job}/{task}/2/1.png")
        );
        assert_eq!(
            output_key("", job, task, 1, 0),
            format!("{job}/{task}/1/0.png")
        );
        assert_ne!(
            output_key("p", job, task, 1, 0),
            output_key("p", job, task, 2, 0)
        );
    }
}
