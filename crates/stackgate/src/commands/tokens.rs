use super::{cli_actor, users::find};
use crate::{CliError, cli::TokenCommand};
use stackgate_identity::{Clock, SecretToken, SystemClock, Target, Uuid};
use stackgate_store::Store;

use stackgate_web::api::tokens::{TOKEN_PREFIX, token_name};

pub(crate) async fn run(cmd: TokenCommand, store: Store) -> Result<(), CliError> {
    let actor = cli_actor();
    match cmd {
        TokenCommand::Create {
            user,
            name,
            expires_in_days,
        } => {
            let owner = find(&store, &user).await?;
            let name = token_name(&name).map_err(|e| CliError::Usage(e.to_string()))?;
            let expires_at = match expires_in_days {
                None => None,
                Some(days @ 1..=3650) => Some(SystemClock.unix() + i64::from(days) * 86_400),
                Some(_) => {
                    return Err(CliError::Usage(
                        "expires-in-days: must be between 1 and 3650".into(),
                    ));
                }
            };
            let secret = SecretToken::generate(TOKEN_PREFIX)?;
            let id = Uuid::new_v4();
            let entry = actor
                .entry(
                    "token.create",
                    Target::ApiToken {
                        id,
                        name: name.clone(),
                    },
                )
                .with_detail(
                    serde_json::json!({ "user": owner.username, "expires_at": expires_at }),
                );
            store
                .create_api_token(id, owner.id, &name, &secret.hash, expires_at, &entry)
                .await?;
            eprintln!(
                "created token {id} for {}; it is shown this once:",
                owner.username
            );
            println!("{}", secret.plaintext);
        }
        TokenCommand::Revoke { id } => {
            let id = Uuid::parse_str(&id)
                .map_err(|_| CliError::Usage(format!("not a token id: {id:?}")))?;
            let token = store.get_api_token(id).await?;
            let entry = actor
                .entry(
                    "token.revoke",
                    Target::ApiToken {
                        id,
                        name: token.name.clone(),
                    },
                )
                .with_detail(serde_json::json!({ "user": token.username }));
            store.revoke_api_token(id, &entry).await?;
            println!("token {id} ({}) revoked", token.name);
        }
        TokenCommand::List => {
            println!("{:<36} {:<16} {:<24} STATE", "ID", "USER", "NAME");
            for t in store.list_api_tokens(None).await? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!("{:<36} {:<16} {:<24} {state}", t.id, t.username, t.name);
            }
        }
    }
    Ok(())
}
