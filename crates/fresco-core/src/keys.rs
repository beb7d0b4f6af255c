//! Object keys of outputs: `{prefix}/{job}/{task}/{attempt}/{index}.png`,
//! and of each job's manifest beside them: `{prefix}/{job}/manifest.jsonl`.
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

/// The folder every output key of one job lies under: `{prefix}/{job}/`
/// (no prefix when it is empty).
pub fn job_dir(prefix: &str, job: JobId) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        format!("{job}/")
    } else {
        format!("{prefix}/{job}/")
    }
}

/// The key of the job's manifest, beside its tasks' folders:
/// `{prefix}/{job}/manifest.jsonl`. No task folder has this name, so no
/// output key is ever it.
pub fn manifest_key(prefix: &str, job: JobId) -> String {
    format!("{}manifest.jsonl", job_dir(prefix, job))
}

/// The folder every output key of one task lies under, every attempt's:
/// `{prefix}/{job}/{task}/` (no prefix when it is empty).
pub fn task_dir(prefix: &str, job: JobId, task: TaskId) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        format!("{job}/{task}/")
    } else {
        format!("{prefix}/{job}/{task}/")
    }
}

/// The attempt of an object key under `task_dir`: the number right after
/// it (`None` for a key laid out otherwise).
pub fn attempt_of(task_dir: &str, key: &str) -> Option<u32> {
    let rest = key.strip_prefix(task_dir)?;
    let (attempt, file) = rest.split_once('/')?;
    if file.is_empty() {
        return None;
    }
    attempt.parse().ok()
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

    #[test]
    fn every_output_key_of_a_task_lies_under_its_folder_and_names_its_attempt() {
        let job = JobId::new();
        let task = TaskId::new();
        for prefix in ["", "renders", "/a/b/"] {
            let dir = task_dir(prefix, job, task);
            let key = output_key(prefix, job, task, 3, 1);
            assert!(key.starts_with(&dir), "{key} under {dir}");
            assert_eq!(attempt_of(&dir, &key), Some(3));
        }
        let dir = task_dir("p", job, task);
        assert_eq!(attempt_of(&dir, &format!("{dir}x/0.png")), None);
        assert_eq!(attempt_of(&dir, &format!("{dir}2")), None);
        assert_eq!(attempt_of(&dir, "elsewhere/1/0.png"), None);
    }

    #[test]
    fn a_jobs_manifest_lies_in_its_folder_beside_its_tasks() {
        let job = JobId::new();
        assert_eq!(
            manifest_key("renders/", job),
            format!("renders/{job}/manifest.jsonl")
        );
        assert_eq!(manifest_key("", job), format!("{job}/manifest.jsonl"));
        assert!(manifest_key("p", job).starts_with(&job_dir("p", job)));
    }
}
