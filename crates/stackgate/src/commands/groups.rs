use super::{cli_actor, users::find};
use crate::{CliError, cli::GroupCommand};
use stackgate_identity::{Group, NewGroup, Target};
use stackgate_store::Store;

pub(crate) async fn run(cmd: GroupCommand, store: Store) -> Result<(), CliError> {
    let actor = cli_actor();
    match cmd {
        GroupCommand::Add { name, description } => {
            let new = NewGroup::parse(&name, description.as_deref())?;
            let entry = actor.entry(
                "group.create",
                Target::Group {
                    id: new.id,
                    name: new.name.clone(),
                },
            );
            let group = store.create_group(&new, &entry).await?;
            println!("created group {} ({})", group.name, group.id);
        }
        GroupCommand::List => {
            println!("{:<24} {:>7}  DESCRIPTION", "NAME", "MEMBERS");
            let mut after: Option<String> = None;
            loop {
                let page = store.list_groups(after.as_deref(), None, 500).await?;
                for g in &page.groups {
                    println!("{:<24} {:>7}  {}", g.name, g.member_count, g.description);
                }
                match page.next_cursor {
                    Some(cursor) => after = Some(cursor),
                    None => break,
                }
            }
        }
        GroupCommand::AddMember { group, username } => {
            let group = find_group(&store, &group).await?;
            let user = find(&store, &username).await?;
            let entry = actor
                .entry(
                    "group.add_member",
                    Target::Group {
                        id: group.id,
                        name: group.name.clone(),
                    },
                )
                .with_detail(serde_json::json!({ "user": user.username, "user_id": user.id }));
            if store.add_member(group.id, user.id, &entry).await? {
                println!("{} added to {}", user.username, group.name);
            } else {
                println!("{} was already in {}", user.username, group.name);
            }
        }
        GroupCommand::RemoveMember { group, username } => {
            let group = find_group(&store, &group).await?;
            let user = find(&store, &username).await?;
            let entry = actor
                .entry(
                    "group.remove_member",
                    Target::Group {
                        id: group.id,
                        name: group.name.clone(),
                    },
                )
                .with_detail(serde_json::json!({ "user": user.username, "user_id": user.id }));
            store.remove_member(group.id, user.id, &entry).await?;
            println!("{} removed from {}", user.username, group.name);
        }
    }
    Ok(())
}

async fn find_group(store: &Store, name: &str) -> Result<Group, CliError> {
    store
        .find_group(name)
        .await?
        .ok_or_else(|| CliError::Usage(format!("no group named {name:?}")))
}
