//! fresco's end-to-end suite in one test binary: each module is one
//! area, played against the real binaries, Postgres, Redis and S3. One
//! binary links the workspace once instead of once per file, which keeps
//! a fresh build's time and disk down.

mod api;
mod authorization;
mod bad_requests;
mod capabilities;
mod chaos;
mod control;
mod dashboard;
mod dev;
mod download_resume;
mod downloads;
mod failures;
mod fairness;
mod farm;
mod health;
mod leases;
mod manifests;
mod metrics;
mod models;
mod noop;
mod operations;
mod presigned;
mod progress;
mod quarantine;
mod quotas;
mod retention;
mod sd_models;
mod seeds;
mod sweeper;
mod sweeps;
mod tls;
mod traces;
mod waiting;
mod worker_tokens;
