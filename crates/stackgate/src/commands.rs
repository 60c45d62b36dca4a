//! One function per command; each opens what it needs and reports in plain lines.

mod app_check;
mod apps;
mod bench;
mod bench_login;
mod bench_oidc;
mod clients;
mod groups;
mod master_key;
mod tokens;
mod users;

use crate::{
    CliError,
    cli::{Command, ConfigCommand, PasswordInput},
    config::Config,
    server,
};
use stackgate_identity::{Actor, PasswordHasher, SystemClock};
use stackgate_store::Store;
use std::{
    io::{BufRead, IsTerminal},
    sync::Arc,
};

pub(crate) async fn dispatch(command: Command, config: Config) -> Result<(), CliError> {
    match command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let store = open(&config).await?;
            println!("migrations applied ({})", store.backend().name());
            store.close().await;
            Ok(())
        }
        Command::Config(ConfigCommand::Check) => {
            println!("{}", config.describe());
            println!("# configuration is valid");
            Ok(())
        }
        Command::User(cmd) => {
            with_store(&config, |store| users::run(cmd, store, config.clone())).await
        }
        Command::Group(cmd) => with_store(&config, |store| groups::run(cmd, store)).await,
        Command::Token(cmd) => with_store(&config, |store| tokens::run(cmd, store)).await,
        Command::Client(cmd) => with_store(&config, |store| clients::run(cmd, store)).await,
        Command::Keys(cmd) => {
            with_store(&config, |store| clients::keys(cmd, store, config.clone())).await
        }
        Command::MasterKey(cmd) => master_key::run(cmd, &config).await,
        Command::App(cmd) => apps::run(cmd, &config).await,
        Command::DemoApp => Ok(()),
        Command::Bench(args) => bench::run(args, config).await,
    }
}

async fn serve(config: Config) -> Result<(), CliError> {
    let running = server::start(&config, Arc::new(SystemClock)).await?;
    if let Some(link) = &running.setup_link {
        let minutes = config.setup_link_ttl / 60;
        println!();
        println!(
            "  No admin account exists yet. Open this link within {minutes} minutes to create one."
        );
        println!("  It works once; restarting Stackgate prints a new one.");
        println!();
        println!("    {link}");
        println!();
    }
    println!(
        "Stackgate is listening on http://{} (issuer {})",
        running.local_addr,
        config.issuer_str()
    );
    if let Some(edge) = running.proxy_addr {
        println!("The edge proxy is listening on {edge}");
    }
    server::shutdown_signal().await;
    tracing::info!("shutting down: no new connections, finishing in-flight requests");
    running.shutdown().await
}

async fn open(config: &Config) -> Result<Store, CliError> {
    server::open_store(config, Arc::new(SystemClock)).await
}

async fn with_store<F, Fut>(config: &Config, f: F) -> Result<(), CliError>
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = Result<(), CliError>>,
{
    let store = open(config).await?;
    let result = f(store.clone()).await;
    store.close().await;
    result
}

/// The actor every CLI change is recorded under.
fn cli_actor() -> Actor {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_default();
    if user.is_empty() {
        Actor::system("cli")
    } else {
        Actor::system(&format!("cli:{user}"))
    }
}

fn hasher(config: &Config) -> Result<PasswordHasher, CliError> {
    Ok(PasswordHasher::new(config.argon2, config.password)?)
}

/// Reads the first line of `reader` as a password (without its line ending).
pub fn password_from_reader(reader: impl BufRead) -> Result<String, CliError> {
    let mut line = String::new();
    let mut reader = reader;
    reader.read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(CliError::Usage("no password on standard input".into()));
    }
    Ok(password)
}

/// The password for a command: from standard input when asked, else typed twice at a prompt.
fn read_password(input: &PasswordInput) -> Result<String, CliError> {
    if input.password_stdin {
        return password_from_reader(std::io::stdin().lock());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(
            "no terminal to ask for a password: pass --password-stdin and pipe it in".into(),
        ));
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Password again: ")?;
    if first != second {
        return Err(CliError::Usage("the two passwords are not the same".into()));
    }
    Ok(first)
}
