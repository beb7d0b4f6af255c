//! The page shell (title, navigation, stylesheet and script, all served
//! by the dashboard itself, nothing from a CDN) and how a job's numbers
//! read on a page: state, progress, counts, ETA, age.

use chrono::{DateTime, Utc};
use fresco_proto::v1 as pb;
use maud::{DOCTYPE, Markup, html};

use crate::session::Viewer;

/// The navigation entries, by the path they open.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Jobs,
    Queues,
    Workers,
}

fn head(title: &str) -> Markup {
    html! {
        (DOCTYPE)
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · fresco" }
        link rel="stylesheet" href="/assets/dashboard.css";
        script src="/assets/dashboard.js" defer {}
    }
}

/// A page with the navigation; `live` is the server-push stream the page
/// script follows, if any.
pub fn page(
    viewer: &Viewer,
    section: Section,
    title: &str,
    live: Option<&str>,
    body: Markup,
) -> Markup {
    let item = |s: Section, href: &str, label: &str| {
        html! {
            li { a href=(href) aria-current=[(s == section).then_some("page")] { (label) } }
        }
    };
    html! {
        (head(title))
        body data-live=[live] {
            a.skip href="#content" { "Skip to content" }
            header.top {
                a.brand href="/" { "fresco" }
                nav aria-label="Main" {
                    ul {
                        (item(Section::Jobs, "/", "Jobs"))
                        (item(Section::Queues, "/queues", "Queues"))
                        (item(Section::Workers, "/workers", "Workers"))
                    }
                }
                @if viewer.signed_in {
                    form.signout method="post" action="/logout" {
                        button type="submit" { "Sign out" }
                    }
                }
            }
            main #content { (body) }
        }
    }
}

/// A page without navigation (sign-in, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (head(title))
        body { (body) }
    }
}

/// Tasks that have ended, in any way.
pub fn done(counts: &pb::StateCounts) -> u64 {
    counts.succeeded + counts.failed + counts.cancelled
}

/// How far a job is, 0 to 100.
pub fn percent(job: &pb::Job) -> u64 {
    let counts = job.counts.unwrap_or_default();
    match job.task_count {
        0 => 100,
        total => done(&counts) * 100 / total,
    }
}

/// A job's state in one word, as `fresco list --state` names them.
pub fn state(job: &pb::Job) -> &'static str {
    let counts = job.counts.unwrap_or_default();
    if !job.finished {
        return if job.paused {
            "paused"
        } else if counts.running > 0 {
            "running"
        } else {
            "queued"
        };
    }
    if counts.failed > 0 {
        "failed"
    } else if counts.cancelled > 0 {
        "cancelled"
    } else {
        "succeeded"
    }
}

/// "3 succeeded · 1 running · 4 queued", leaving out the zeros.
pub fn counts(job: &pb::Job) -> String {
    let c = job.counts.unwrap_or_default();
    let parts: Vec<String> = [
        (c.succeeded, "succeeded"),
        (c.running, "running"),
        (c.queued, "queued"),
        (c.failed, "failed"),
        (c.cancelled, "cancelled"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        "no tasks".into()
    } else {
        parts.join(" · ")
    }
}

/// A span of seconds the way people say it: "40 s", "12 min", "3 h 5 min".
pub fn span(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// The ETA of a job, or a dash.
pub fn eta(job: &pb::Job) -> String {
    match job.eta_seconds {
        Some(seconds) if !job.finished => format!("in {}", span(seconds)),
        _ => "–".into(),
    }
}

/// A protobuf timestamp as a time.
pub fn time(ts: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let ts = ts?;
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).unwrap_or(0))
}

/// How long ago `ts` was: "5 min ago".
pub fn ago(ts: Option<&prost_types::Timestamp>) -> String {
    match time(ts) {
        Some(at) => {
            let seconds = (Utc::now() - at).num_seconds().max(0);
            format!("{} ago", span(seconds.unsigned_abs()))
        }
        None => "–".into(),
    }
}

/// A job's progress bar with its percentage, updated live by the page
/// script through the ids it carries.
pub fn progress(job: &pb::Job) -> Markup {
    let percent = percent(job);
    html! {
        span.progress {
            progress data-role="progress" max="100" value=(percent)
                aria-label={ "Progress of job " (job.id) } { (percent) "%" }
            span data-role="percent" { (percent) "%" }
        }
    }
}

/// A job's labels as small tags.
pub fn labels(job: &pb::Job) -> Markup {
    let mut labels: Vec<_> = job.labels.iter().collect();
    labels.sort();
    html! {
        @for (key, value) in labels {
            span.label { (key) "=" (value) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(queued: u64, running: u64, succeeded: u64, failed: u64, finished: bool) -> pb::Job {
        pb::Job {
            task_count: queued + running + succeeded + failed,
            finished,
            counts: Some(pb::StateCounts {
                queued,
                running,
                succeeded,
                failed,
                cancelled: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_job_reads_as_one_state_word() {
        assert_eq!(state(&job(2, 0, 0, 0, false)), "queued");
        assert_eq!(state(&job(2, 1, 0, 0, false)), "running");
        assert_eq!(state(&job(0, 0, 3, 0, true)), "succeeded");
        assert_eq!(state(&job(0, 0, 3, 1, true)), "failed");
        let mut paused = job(2, 0, 0, 0, false);
        paused.paused = true;
        assert_eq!(state(&paused), "paused");
    }

    #[test]
    fn progress_counts_every_ended_task() {
        assert_eq!(percent(&job(2, 0, 1, 1, false)), 50);
        assert_eq!(percent(&job(0, 0, 0, 0, true)), 100);
        assert_eq!(counts(&job(1, 0, 3, 0, false)), "3 succeeded · 1 queued");
    }

    #[test]
    fn spans_read_in_the_largest_units() {
        assert_eq!(span(42), "42 s");
        assert_eq!(span(720), "12 min");
        assert_eq!(span(3 * 3600 + 300), "3 h 5 min");
        assert_eq!(span(90_000), "1 d 1 h");
    }
}
