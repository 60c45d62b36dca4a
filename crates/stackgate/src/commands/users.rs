use super::{cli_actor, hasher, read_password};
use crate::{CliError, cli::UserCommand, config::Config};
use stackgate_identity::{ADMINS_GROUP_ID, NewUser, Target, User, UserPatch};
use stackgate_store::{Store, UserFilter};

pub(crate) async fn run(cmd: UserCommand, store: Store, config: Config) -> Result<(), CliError> {
    let actor = cli_actor();
    match cmd {
        UserCommand::Add {
            username,
            email,
            display_name,
            admin,
            no_password,
            password,
        } => {
            let new = NewUser::parse(&username, email.as_deref(), display_name.as_deref())?;
            let hash = if no_password {
                None
            } else {
                let hasher = hasher(&config)?;
                let password = read_password(&password)?;
                Some(hasher.hash(password, &new.username).await?)
            };
            let groups = if admin { vec![ADMINS_GROUP_ID] } else { vec![] };
            let entry = actor
                .entry(
                    "user.create",
                    Target::User {
                        id: new.id,
                        name: new.username.clone(),
                    },
                )
                .with_detail(serde_json::json!({ "admin": admin }));
            let user = store
                .create_user(&new, hash.as_ref(), &groups, &entry)
                .await?;
            println!(
                "created user {} ({}){}",
                user.username,
                user.id,
                if admin { " as admin" } else { "" }
            );
        }
        UserCommand::List { query } => {
            let mut after = None;
            println!("{:<24} {:<32} {:<8} ID", "USERNAME", "EMAIL", "STATE");
            loop {
                let page = store
                    .list_users(&UserFilter {
                        after,
                        query: query.clone(),
                        limit: 500,
                        ..Default::default()
                    })
                    .await?;
                for u in &page.users {
                    let state = if u.disabled { "disabled" } else { "active" };
                    println!(
                        "{:<24} {:<32} {:<8} {}",
                        u.username,
                        u.email.as_deref().unwrap_or("-"),
                        state,
                        u.id
                    );
                }
                match page.next_cursor {
                    Some(cursor) => after = Some(cursor),
                    None => break,
                }
            }
        }
        UserCommand::Disable { username } => set_disabled(&store, &username, true).await?,
        UserCommand::Enable { username } => set_disabled(&store, &username, false).await?,
        UserCommand::Passwd { username, password } => {
            let user = find(&store, &username).await?;
            let hasher = hasher(&config)?;
            let hash = hasher
                .hash(read_password(&password)?, &user.username)
                .await?;
            let entry = actor.entry(
                "user.set_password",
                Target::User {
                    id: user.id,
                    name: user.username.clone(),
                },
            );
            store.set_password(user.id, &hash, &entry).await?;
            println!("password of {} changed", user.username);
        }
    }
    Ok(())
}

pub(crate) async fn find(store: &Store, username: &str) -> Result<User, CliError> {
    store
        .find_user(username)
        .await?
        .ok_or_else(|| CliError::Usage(format!("no user named {username:?}")))
}

async fn set_disabled(store: &Store, username: &str, disabled: bool) -> Result<(), CliError> {
    let user = find(store, username).await?;
    let action = if disabled {
        "user.disable"
    } else {
        "user.enable"
    };
    let entry = cli_actor().entry(
        action,
        Target::User {
            id: user.id,
            name: user.username.clone(),
        },
    );
    let patch = UserPatch::parse(None, None, Some(disabled))?;
    store.update_user(user.id, &patch, &entry).await?;
    println!(
        "{} {}",
        user.username,
        if disabled { "disabled" } else { "enabled" }
    );
    Ok(())
}
