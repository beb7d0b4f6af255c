//! One module per `fresco` command.

pub mod cancel;
pub mod control;
#[cfg(feature = "dev")]
pub mod dev;
pub mod download;
pub mod list;
pub mod manifest;
pub mod regen;
pub mod status;
pub mod submit;
pub mod usage;
pub mod watch;
pub mod workers;
