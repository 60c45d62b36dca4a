//! The composition root of Stackgate: configuration, the command line, and the server that
//! wires the store, the identity domain and the web surface together.

#![forbid(unsafe_code)]

#[cfg(test)]
mod chart;
pub mod cli;
mod commands;
pub mod config;
mod error;
mod logging;
pub mod proxy_config;
pub mod server;

pub use error::CliError;

use cli::Cli;

/// Runs one command line to completion.
pub fn run(cli: Cli) -> Result<(), CliError> {
    // The demo app is started by the process driver with its own settings only; it reads no
    // Stackgate configuration.
    if let cli::Command::DemoApp = cli.command {
        let settings =
            stackgate_demo::DemoSettings::from_env().map_err(|e| CliError::Usage(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::Runtime(format!("cannot start the async runtime: {e}")))?;
        return runtime
            .block_on(stackgate_demo::serve(settings))
            .map_err(|e| CliError::Runtime(e.to_string()));
    }
    let config = config::Config::load(
        cli.config.as_deref(),
        // vars_os: a variable that is not UTF-8 must not crash us unless it is one of ours.
        std::env::vars_os().filter_map(|(k, v)| {
            let key = k.to_str()?.to_owned();
            key.starts_with(config::ENV_PREFIX)
                .then(|| (key, v.to_string_lossy().into_owned()))
        }),
    )?;
    // What Stackgate creates (its database, key files, app folders, logs) is its own alone, as
    // PostgreSQL does. Apps get a folder of their own (see stackgate_apps::app_users) and need
    // nothing of Stackgate's to be readable.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    logging::init(&config, cli.log_format)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Runtime(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(commands::dispatch(cli.command, config))
}

pub use commands::password_from_reader;
pub use config::Config;
pub use logging::LogFormat;
