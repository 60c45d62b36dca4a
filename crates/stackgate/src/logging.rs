//! Logs through `tracing`: readable lines by default, JSON lines for log collectors.

use crate::{CliError, config::Config};
use tracing_subscriber::{EnvFilter, fmt};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

pub(crate) fn init(config: &Config, flag: Option<LogFormat>) -> Result<(), CliError> {
    let filter =
        // Validated when the config was loaded.
        EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match flag.unwrap_or(config.log_format) {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Already initialised (tests running several commands in one process): keep the first.
    let _ = result;
    Ok(())
}
