//! One poll per watched job, however many `WatchJob` streams follow it.
//!
//! The [`WatchHub`] keeps a `tokio::sync::watch` channel per job someone
//! watches, fed by one poller task that reads the job every
//! `watch_interval`. The first watcher of a job starts its poller; the
//! poller ends when the last watcher leaves, the job has finished, a read
//! fails or the coordinator shuts down. A watcher's first message is the
//! newest read of the job, its own read (made with its tenancy check)
//! included, so a new watcher never starts from a stale state; every
//! later message is the poller's. N watchers of a job cost one store read
//! per interval, not N.
//!
//! Reads are ordered by the [`Ticket`] taken before each: a read the
//! channel already holds a later one of is dropped, so no watcher sees a
//! job step back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use fresco_core::JobId;
use fresco_proto::v1 as pb;
use tokio::sync::watch;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::{debug, warn};

use crate::error::ApiError;
use crate::{Coordinator, metrics, waiting};

/// The place of a read of a job among all reads for watchers: taken
/// before the read starts, so a later ticket read a state at least as new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

/// A read of a job, as its channel holds it.
#[derive(Debug, Clone)]
pub struct Reading {
    ticket: Ticket,
    job: Result<pb::Job, Status>,
}

impl Reading {
    /// Whether nothing follows this read: the job has finished, or the
    /// read failed (its watchers end with the error).
    fn is_final(&self) -> bool {
        match &self.job {
            Ok(job) => job.finished,
            Err(_) => true,
        }
    }
}

/// What the hub has done, to wait on in tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubCounts {
    /// Pollers running now: one per watched job.
    pub pollers: usize,
    /// Pollers started since the coordinator started.
    pub started: u64,
    /// Store reads the pollers made.
    pub polls: u64,
}

/// The watched jobs' channels; cheap to clone, one per coordinator.
#[derive(Clone, Default)]
pub struct WatchHub {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: Mutex<HashMap<JobId, watch::Sender<Reading>>>,
    tickets: AtomicU64,
    counts: watch::Sender<HubCounts>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            jobs: Mutex::default(),
            tickets: AtomicU64::new(0),
            counts: watch::Sender::new(HubCounts::default()),
        }
    }
}

/// Whether a watcher hears of `now` after `last`: they differ in more than
/// throughput and estimated finish, which move with the clock alone and
/// travel along with a change, never as one.
pub fn changed(last: &pb::Job, now: &pb::Job) -> bool {
    let steady = |job: &pb::Job| pb::Job {
        tasks_per_minute: 0.0,
        images_per_minute: 0.0,
        rate_window_seconds: 0,
        eta: None,
        eta_seconds: None,
        ..job.clone()
    };
    steady(last) != steady(now)
}

/// Puts `offered` in place of `current` unless `current` was read later;
/// whether the channel's watchers should hear of it (a change, or an
/// error). A read that changes only the clock's fields is kept silently,
/// so the next watcher to join starts from it.
fn offer(current: &mut Reading, offered: Reading) -> bool {
    if offered.ticket < current.ticket {
        return false;
    }
    let news = match (&current.job, &offered.job) {
        (Ok(last), Ok(now)) => changed(last, now),
        _ => true,
    };
    *current = offered;
    news
}

impl WatchHub {
    /// A ticket for a read about to start.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.inner.tickets.fetch_add(1, Ordering::Relaxed))
    }

    /// The hub's counts, to wait on.
    pub fn counts(&self) -> watch::Receiver<HubCounts> {
        self.inner.counts.subscribe()
    }

    fn jobs(&self) -> MutexGuard<'_, HashMap<JobId, watch::Sender<Reading>>> {
        self.inner
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the watchers of job `id`, given `first`, the caller's own read
    /// of it under `ticket`: the channel of its reads, its poller started
    /// when none runs. A finished job needs no poller: its channel holds
    /// `first` alone.
    pub fn subscribe(
        &self,
        app: &Coordinator,
        id: JobId,
        ticket: Ticket,
        first: pb::Job,
        shutdown: &CancellationToken,
    ) -> watch::Receiver<Reading> {
        let first = Reading {
            ticket,
            job: Ok(first),
        };
        if first.is_final() {
            return watch::channel(first).1;
        }
        let mut jobs = self.jobs();
        if let Some(sender) = jobs.get(&id) {
            sender.send_if_modified(|current| offer(current, first));
            return sender.subscribe();
        }
        let (sender, receiver) = watch::channel(first);
        jobs.insert(id, sender.clone());
        self.inner.counts.send_modify(|counts| {
            counts.pollers += 1;
            counts.started += 1;
        });
        debug!(job_id = %id, "watch poller started");
        tokio::spawn(poll(
            self.clone(),
            app.clone(),
            id,
            sender,
            shutdown.clone(),
        ));
        receiver
    }

    /// Drops job `id`'s channel, if it is `sender`'s, when nothing more
    /// comes of it: no watcher is left, or it holds a final read. Decided
    /// under the lock [`WatchHub::subscribe`] joins under, so no watcher
    /// joins a channel about to go.
    fn retire_if_done(&self, id: JobId, sender: &watch::Sender<Reading>) -> bool {
        let mut jobs = self.jobs();
        let done = sender.receiver_count() == 0 || sender.borrow().is_final();
        if done {
            Self::remove(&mut jobs, id, sender);
        }
        done
    }

    /// Drops job `id`'s channel, if it is `sender`'s, whoever watches it.
    fn retire(&self, id: JobId, sender: &watch::Sender<Reading>) {
        Self::remove(&mut self.jobs(), id, sender);
    }

    fn remove(
        jobs: &mut HashMap<JobId, watch::Sender<Reading>>,
        id: JobId,
        sender: &watch::Sender<Reading>,
    ) {
        if jobs.get(&id).is_some_and(|held| held.same_channel(sender)) {
            jobs.remove(&id);
        }
    }

    fn count_stopped(&self) {
        self.inner
            .counts
            .send_modify(|counts| counts.pollers = counts.pollers.saturating_sub(1));
    }

    fn count_poll(&self) {
        metrics::watch_polled();
        self.inner.counts.send_modify(|counts| counts.polls += 1);
    }

    /// Reads job `id` once and offers the read to its channel.
    async fn poll_once(&self, app: &Coordinator, id: JobId, sender: &watch::Sender<Reading>) {
        let ticket = self.ticket();
        let job = read(app, id).await;
        self.count_poll();
        if let Err(status) = &job {
            warn!(job_id = %id, error = %status.message(), "reading a watched job failed");
        }
        sender.send_if_modified(|current| offer(current, Reading { ticket, job }));
    }
}

/// Job `id` as the API shows it, waiting reason included.
async fn read(app: &Coordinator, id: JobId) -> Result<pb::Job, Status> {
    let job = app.store.get_job(id).await.map_err(ApiError::from)?;
    Ok(waiting::job_message(app, &job).await?)
}

/// Job `id`'s poller: a read every interval until [`WatchHub::retire_if_done`]
/// says it is done, or the coordinator shuts down.
async fn poll(
    hub: WatchHub,
    app: Coordinator,
    id: JobId,
    sender: watch::Sender<Reading>,
    shutdown: CancellationToken,
) {
    let interval = app.settings.watch_interval;
    loop {
        match next_turn(&hub, id, &sender, interval, &shutdown).await {
            Turn::Poll => hub.poll_once(&app, id, &sender).await,
            Turn::Stop => break,
        }
        if hub.retire_if_done(id, &sender) {
            break;
        }
    }
    hub.retire(id, &sender);
    hub.count_stopped();
    debug!(job_id = %id, "watch poller stopped");
}

/// What a poller does next.
enum Turn {
    Poll,
    Stop,
}

/// Waits out one interval: [`Turn::Stop`] once the last watcher has left
/// (and no other joined meanwhile) or the coordinator shuts down.
async fn next_turn(
    hub: &WatchHub,
    id: JobId,
    sender: &watch::Sender<Reading>,
    interval: std::time::Duration,
    shutdown: &CancellationToken,
) -> Turn {
    let tick = tokio::time::sleep(interval);
    tokio::pin!(tick);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Turn::Stop,
            _ = &mut tick => return Turn::Poll,
            _ = sender.closed() => {
                if hub.retire_if_done(id, sender) {
                    return Turn::Stop;
                }
            }
        }
    }
}

/// One watcher's stream: the channel's newest read now, then each change,
/// until the job has finished; the error of a failed read; `UNAVAILABLE`
/// when the coordinator shuts down.
pub fn follow(
    mut receiver: watch::Receiver<Reading>,
    shutdown: CancellationToken,
) -> impl Stream<Item = Result<pb::Job, Status>> + Send + 'static {
    async_stream::try_stream! {
        let mut last = newest(&mut receiver)?;
        yield last.clone();
        while !last.finished {
            let now = next_reading(&mut receiver, &shutdown).await?;
            if changed(&last, &now) {
                last = now;
                yield last.clone();
            }
        }
    }
}

/// The channel's newest read, marked seen (its lock let go at once).
fn newest(receiver: &mut watch::Receiver<Reading>) -> Result<pb::Job, Status> {
    receiver.borrow_and_update().job.clone()
}

/// The channel's next read. A channel that closes before a final read
/// did so because the coordinator is shutting down.
async fn next_reading(
    receiver: &mut watch::Receiver<Reading>,
    shutdown: &CancellationToken,
) -> Result<pb::Job, Status> {
    let seen = tokio::select! {
        _ = shutdown.cancelled() => None,
        seen = receiver.changed() => seen.ok(),
    };
    match seen {
        Some(()) => newest(receiver),
        None => Err(ApiError::ShuttingDown.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(queued: u64, tasks_per_minute: f64) -> pb::Job {
        pb::Job {
            counts: Some(pb::StateCounts {
                queued,
                ..Default::default()
            }),
            tasks_per_minute,
            ..Default::default()
        }
    }

    fn reading(ticket: u64, job: pb::Job) -> Reading {
        Reading {
            ticket: Ticket(ticket),
            job: Ok(job),
        }
    }

    fn queued(reading: &Reading) -> u64 {
        let job = reading.job.as_ref().expect("a job");
        job.counts.expect("counts").queued
    }

    #[test]
    fn a_later_read_that_changes_the_job_is_news() {
        let mut current = reading(1, job(5, 0.0));
        assert!(offer(&mut current, reading(2, job(4, 0.0))));
        assert_eq!(queued(&current), 4);
    }

    #[test]
    fn an_earlier_read_never_replaces_a_later_one() {
        let mut current = reading(5, job(4, 0.0));
        assert!(!offer(&mut current, reading(3, job(5, 0.0))));
        assert_eq!(queued(&current), 4, "the job never steps back");
    }

    #[test]
    fn a_read_moving_only_the_clock_is_kept_silently() {
        let mut current = reading(1, job(5, 1.0));
        assert!(!offer(&mut current, reading(2, job(5, 2.0))));
        let kept = current.job.as_ref().expect("a job");
        assert!(
            (kept.tasks_per_minute - 2.0).abs() < 1e-9,
            "the newest rate waits for the next watcher"
        );
    }

    #[test]
    fn a_failed_read_is_news_and_final() {
        let mut current = reading(1, job(5, 0.0));
        let failed = Reading {
            ticket: Ticket(2),
            job: Err(Status::internal("internal error")),
        };
        assert!(offer(&mut current, failed));
        assert!(current.is_final());
    }

    #[test]
    fn a_finished_job_is_final() {
        let finished = pb::Job {
            finished: true,
            ..Default::default()
        };
        assert!(reading(1, finished).is_final());
        assert!(!reading(1, job(1, 0.0)).is_final());
    }
}
