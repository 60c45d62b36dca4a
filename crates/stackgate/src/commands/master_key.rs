//! `stackgate master-key`: rotation of the key that seals secrets at rest.

use super::open;
use crate::{
    CliError,
    cli::MasterKeyCommand,
    config::Config,
    server::{self, MASTER_KEY_FILE, NEXT_MASTER_KEY_FILE},
};
use stackgate_oidc::MasterKey;

pub(crate) async fn run(cmd: MasterKeyCommand, config: &Config) -> Result<(), CliError> {
    match cmd {
        MasterKeyCommand::Generate => {
            println!("{}", new_key()?);
            Ok(())
        }
        MasterKeyCommand::Rotate => rotate(config),
        MasterKeyCommand::Status => status(config).await,
    }
}

fn new_key() -> Result<String, CliError> {
    MasterKey::generate().map_err(|e| CliError::Runtime(e.to_string()))
}

/// Key-file mode only: the pending key is taken up at the next start, by one process, so no
/// running replica is left holding a key that can no longer open what it reads.
fn rotate(config: &Config) -> Result<(), CliError> {
    if config.master_key.is_some() {
        return Err(CliError::Usage(
            "master_key comes from the configuration: put a new key (stackgate master-key generate) in master_key and the current one in previous_master_keys, then restart; see \"Rotating the master key\" in the README".into(),
        ));
    }
    let current = server::master_key(config)?;
    let path = config.data_dir.join(NEXT_MASTER_KEY_FILE);
    if path.exists() {
        return Err(CliError::Usage(format!(
            "a rotation is already waiting for the next start: {}",
            path.display()
        )));
    }
    server::write_private(&path, &new_key()?)?;
    let next = server::master_keys(config)?;
    println!(
        "new master key {} written to {}; it replaces {} ({}) at the next start of Stackgate, which reseals every secret under it",
        next.current().id(),
        path.display(),
        MASTER_KEY_FILE,
        current.id()
    );
    Ok(())
}

async fn status(config: &Config) -> Result<(), CliError> {
    let keys = server::master_keys(config)?;
    let store = open(config).await?;
    let stale = store.sealed_secrets_not_under(keys.current().id()).await;
    store.close().await;
    let stale = stale?;
    println!("current master key: {}", keys.current().id());
    for id in keys.previous_ids() {
        println!("previous master key: {id}");
    }
    if stale.is_empty() {
        println!("every sealed secret is under the current key; no previous key is needed");
    } else {
        let mut ids: Vec<&str> = stale.iter().map(|s| s.master_key_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        println!(
            "{} sealed secrets are still under {}: start Stackgate with those keys in previous_master_keys to reseal them",
            stale.len(),
            ids.join(", ")
        );
    }
    Ok(())
}
