use super::cli_actor;
use crate::{
    CliError,
    cli::{ClientCommand, KeysCommand},
    config::Config,
    server,
};
use stackgate_identity::{SecretToken, Target};
use stackgate_oidc::{NewClient, SigningAlg};
use stackgate_store::{Store, StoreError};
use stackgate_web::api::clients::{CLIENT_SECRET_PREFIX, register};

pub(crate) async fn run(cmd: ClientCommand, store: Store) -> Result<(), CliError> {
    let actor = cli_actor();
    match cmd {
        ClientCommand::Add {
            id,
            name,
            redirect_uris,
            post_logout_redirect_uris,
            public,
            first_party,
            id_token_alg,
        } => {
            let id_token_alg = id_token_alg
                .map(|a| {
                    SigningAlg::parse(&a).ok_or_else(|| {
                        CliError::Usage(format!(
                            "id-token-alg: {a:?} is not one of ES256, RS256, EdDSA"
                        ))
                    })
                })
                .transpose()?;
            let new = NewClient {
                id: Some(id),
                name,
                public,
                redirect_uris,
                post_logout_redirect_uris,
                first_party: Some(first_party),
                id_token_alg,
                ..NewClient::default()
            };
            let (client, secret) = register(&store, new, &actor).await.map_err(|e| match e {
                stackgate_web::error::ApiError::Conflict { detail, .. } => {
                    CliError::Store(StoreError::Refused(detail))
                }
                other => CliError::Usage(other.problem().field.map_or_else(
                    || other.problem().detail,
                    |f| format!("{f}: {}", other.problem().detail),
                )),
            })?;
            eprintln!("registered client {} ({})", client.id, client.name);
            match secret {
                Some(secret) => {
                    eprintln!("its secret is shown this once:");
                    println!("{secret}");
                }
                None => eprintln!("a public client: no secret, PKCE required"),
            }
        }
        ClientCommand::List => {
            println!("{:<24} {:<12} {:<24} REDIRECT URIS", "ID", "KIND", "NAME");
            for stored in store.list_clients().await? {
                let c = stored.client;
                let kind = if stored.secret_hash.is_some() {
                    "confidential"
                } else {
                    "public"
                };
                println!(
                    "{:<24} {kind:<12} {:<24} {}",
                    c.id,
                    c.name,
                    c.redirect_uris.join(" ")
                );
            }
        }
        ClientCommand::RotateSecret { id } => {
            let secret = SecretToken::generate(CLIENT_SECRET_PREFIX)?;
            let entry = actor
                .entry("client.rotate_secret", Target::System)
                .with_detail(serde_json::json!({ "client": id }));
            store.set_client_secret(&id, &secret.hash, &entry).await?;
            eprintln!("new secret for {id}, shown this once:");
            println!("{}", secret.plaintext);
        }
        ClientCommand::Remove { id } => {
            let entry = actor
                .entry("client.delete", Target::System)
                .with_detail(serde_json::json!({ "client": id }));
            store.delete_client(&id, &entry).await?;
            println!("client {id} removed");
        }
    }
    Ok(())
}

pub(crate) async fn keys(cmd: KeysCommand, store: Store, config: Config) -> Result<(), CliError> {
    let keyring = server::keyring(&config, &store).await?;
    match cmd {
        KeysCommand::Rotate => {
            let kids = keyring
                .rotate()
                .await
                .map_err(|e| CliError::Runtime(e.to_string()))?;
            let entry = cli_actor()
                .entry("keys.rotate", Target::System)
                .with_detail(serde_json::json!({ "kids": kids }));
            store.record(&entry).await?;
            println!("new signing keys: {}", kids.join(" "));
            println!(
                "running servers pick them up within a minute; the previous keys stay published until their tokens expire"
            );
        }
        KeysCommand::List => {
            for jwk in &keyring.keys().jwks.keys {
                println!("{:<6} {}", jwk.alg, jwk.kid);
            }
        }
    }
    Ok(())
}
