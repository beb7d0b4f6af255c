//! `fresco`: the command line client of a fresco farm.
//!
//! - [`args`]: the commands and their flags.
//! - [`client`]: the connection to the coordinator.
//! - [`commands`]: one module per command.
//! - [`report`]: how jobs and tasks are printed (text and JSON).
//! - [`sweep`]: the axis flags of `fresco submit` and the sweep they make.
//! - [`tables`]: a job's manifest rows as JSON Lines, CSV or Parquet.

mod args;
mod client;
mod commands;
mod report;
mod sweep;
mod tables;

use std::process::ExitCode;

use clap::Parser;
use fresco_core::status::{ErrorCode, classify};

use crate::args::{Cli, Command};
use crate::client::Target;
use crate::commands::control::{self, Action};

/// Why the CLI stopped, as an exit code.
#[derive(Debug)]
pub enum Failure {
    /// The request or input was refused (exit 2).
    Invalid(String),
    /// The job finished with failed or cancelled tasks (exit 1).
    JobFailed(String),
    /// A call the connection itself failed (the status was made on this
    /// side, not sent by the coordinator): told with its whole cause and
    /// the coordinator's URL (exit 1).
    Transport(tonic::Status),
    /// Anything else (exit 1).
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Self {
        Failure::Other(err)
    }
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Self {
        if std::error::Error::source(&status).is_some() {
            return Failure::Transport(status);
        }
        match classify(&status).code {
            ErrorCode::InvalidArgument | ErrorCode::NotFound => {
                Failure::Invalid(status.message().to_owned())
            }
            ErrorCode::Unauthenticated => Failure::Invalid(format!(
                "the coordinator did not take the API key: {} (give a client key with --api-key or FRESCO_API_KEY)",
                status.message()
            )),
            ErrorCode::Refused => {
                Failure::Invalid(format!("permission denied: {}", status.message()))
            }
            ErrorCode::Unavailable => Failure::Other(anyhow::anyhow!(
                "the coordinator is unavailable: {}",
                status.message()
            )),
            _ => Failure::Other(anyhow::anyhow!("{}: {}", status.code(), status.message())),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    client::use_tls(fresco_tls::ClientFiles {
        ca: cli.tls_ca.clone(),
        ..fresco_tls::ClientFiles::default()
    });
    let target = Target {
        endpoint: cli.coordinator.clone(),
        api_key: cli.api_key,
    };
    let result = match cli.command {
        Command::Submit(args) => commands::submit::run(&target, args).await,
        Command::Status(args) => commands::status::run(&target, args).await,
        Command::List(args) => commands::list::run(&target, args).await,
        Command::Watch(args) => commands::watch::run(&target, args).await,
        Command::Cancel(args) => commands::cancel::run(&target, args).await,
        Command::Retry(args) => control::run(&target, Action::Retry, args).await,
        Command::Pause(args) => control::run(&target, Action::Pause, args).await,
        Command::Resume(args) => control::run(&target, Action::Resume, args).await,
        Command::Priority(args) => control::priority(&target, args).await,
        Command::Download(args) => commands::download::run(&target, args).await,
        Command::Regen(args) => commands::regen::run(&target, args).await,
        Command::Manifest(args) => commands::manifest::run(&target, args).await,
        Command::Workers(args) => commands::workers::run(&target, args).await,
        Command::Usage(args) => commands::usage::run(&target, args).await,
        #[cfg(feature = "dev")]
        Command::Dev(args) => commands::dev::run(args, target.api_key).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Invalid(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::JobFailed(message)) => {
            eprintln!("{message}");
            ExitCode::from(1)
        }
        Err(Failure::Transport(status)) => {
            eprintln!(
                "error: {}",
                fresco_tls::describe_connect_error(&cli.coordinator, &status)
            );
            ExitCode::from(1)
        }
        Err(Failure::Other(err)) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
