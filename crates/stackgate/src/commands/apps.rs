//! `stackgate app …`: the catalog and manifest checks run here; installing and removing go
//! through the running server's admin API, because the server owns the apps' processes.

use crate::{
    CliError,
    cli::{AppCommand, ServerAccess},
    config::Config,
};
use serde_json::{Value, json};
use stackgate_apps::{Catalog, Manifest};
use std::{io::IsTerminal, time::Duration};

pub(crate) async fn run(cmd: AppCommand, config: &Config) -> Result<(), CliError> {
    match cmd {
        AppCommand::Catalog => {
            let catalog = Catalog::load(config.apps_catalog_dir.as_deref())
                .map_err(|e| CliError::Usage(e.to_string()))?;
            println!(
                "{:<12} {:<12} {:<10} {:<6} DESCRIPTION",
                "ID", "VERSION", "RUNS ON", "LOGIN"
            );
            for entry in catalog.latest_entries() {
                let m = &entry.manifest;
                let runs_on = match m.deploy {
                    stackgate_apps::manifest::Deploy::Process(_) => "process",
                    stackgate_apps::manifest::Deploy::Kubernetes(_) => "kubernetes",
                };
                let login = if m.oidc.is_some() { "oidc" } else { "proxy" };
                println!(
                    "{:<12} {:<12} {runs_on:<10} {login:<6} {}",
                    m.id(),
                    m.version(),
                    m.description.trim()
                );
            }
            Ok(())
        }
        AppCommand::Validate { manifest } => {
            let text = std::fs::read_to_string(&manifest)
                .map_err(|e| CliError::Usage(format!("{}: {e}", manifest.display())))?;
            match Manifest::parse(&text) {
                Ok(m) => {
                    println!("{}: valid ({} {})", manifest.display(), m.id(), m.version());
                    Ok(())
                }
                Err(stackgate_apps::AppsError::Manifest(problems)) => {
                    for p in &problems {
                        eprintln!("{}:{p}", manifest.display());
                    }
                    Err(CliError::Usage(format!(
                        "{}: {} problem(s)",
                        manifest.display(),
                        problems.len()
                    )))
                }
                Err(other) => Err(CliError::Runtime(other.to_string())),
            }
        }
        AppCommand::List { server } => {
            let api = Api::new(&server, config)?;
            let apps = api.get("/apps").await?;
            println!(
                "{:<12} {:<10} {:<11} {:<30} GROUPS",
                "ID", "VERSION", "STATUS", "ADDRESS"
            );
            for app in apps.as_array().into_iter().flatten() {
                println!(
                    "{:<12} {:<10} {:<11} {:<30} {}",
                    text(&app["id"]),
                    text(&app["version"]),
                    text(&app["status"]),
                    text(&app["base_url"]),
                    words(&app["user_groups"]),
                );
            }
            Ok(())
        }
        AppCommand::Status { id, server } => {
            let api = Api::new(&server, config)?;
            let app = api.get(&format!("/apps/{id}")).await?;
            println!(
                "{} {} — {}",
                text(&app["id"]),
                text(&app["version"]),
                text(&app["status"])
            );
            println!("address: {}", text(&app["base_url"]));
            println!("users:   {}", words(&app["user_groups"]));
            println!("admins:  {}", words(&app["admin_groups"]));
            for step in app["steps"].as_array().into_iter().flatten() {
                println!(
                    "  {:<8} {:<8} {}",
                    text(&step["name"]),
                    text(&step["state"]),
                    step["detail"].as_str().unwrap_or("")
                );
            }
            if let Some(error) = app["error"].as_str() {
                println!("error: {error}");
            }
            Ok(())
        }
        AppCommand::Install {
            id,
            groups,
            admin_groups,
            update_policy,
            dry_run,
            server,
        } => {
            let api = Api::new(&server, config)?;
            let mut body = json!({ "app": id, "admin_groups": admin_groups });
            if !groups.is_empty() {
                body["user_groups"] = json!(groups);
            }
            if let Some(policy) = update_policy {
                body["update_policy"] = json!(policy);
            }
            if dry_run {
                let plan = api.post("/apps?dry_run=true", &body).await?;
                println!(
                    "installing {} {} at {} would create:",
                    text(&plan["app"]),
                    text(&plan["version"]),
                    text(&plan["base_url"])
                );
                for object in plan["objects"].as_array().into_iter().flatten() {
                    println!(
                        "  {:<7} {:<14} {} ({})",
                        text(&object["step"]),
                        text(&object["kind"]),
                        text(&object["name"]),
                        text(&object["detail"])
                    );
                }
                return Ok(());
            }
            api.post("/apps", &body).await?;
            follow(&api, &id).await
        }
        AppCommand::Upgrade {
            id,
            version,
            server,
        } => {
            let api = Api::new(&server, config)?;
            let app = api
                .post(
                    &format!("/apps/{id}/upgrade"),
                    &json!({ "version": version }),
                )
                .await?;
            println!("{id} now runs {}", text(&app["version"]));
            Ok(())
        }
        AppCommand::Check {
            id,
            username,
            password_stdin,
            chromium,
            server,
        } => {
            let api = Api::new(&server, config)?;
            let app = api.get(&format!("/apps/{id}")).await?;
            if app["status"] != "installed" {
                return Err(CliError::Usage(format!("{id} is not installed")));
            }
            let password = if password_stdin {
                crate::password_from_reader(std::io::stdin().lock())?
            } else if let Ok(password) = std::env::var("STACKGATE_CHECK_PASSWORD") {
                password
            } else {
                rpassword::prompt_password(format!("password of {username}: "))?
            };
            let check = &app["check"];
            let target = super::app_check::Target {
                base_url: text(&app["base_url"]),
                issuer: api.issuer.clone(),
                sign_in: text(&app["sign_in"]),
                sign_in_path: check["sign_in_path"].as_str().map(str::to_owned),
                signed_in_text: check["signed_in_text"].as_str().map(str::to_owned),
                signed_out_text: check["signed_out_text"].as_str().map(str::to_owned),
                username,
                password,
            };
            let chromium = chromium.unwrap_or_else(super::app_check::default_chromium);
            super::app_check::run(target, &chromium).await
        }
        AppCommand::Uninstall { id, purge, server } => {
            let api = Api::new(&server, config)?;
            let path = if purge {
                format!("/apps/{id}?purge=true")
            } else {
                format!("/apps/{id}")
            };
            api.delete(&path).await?;
            println!("{id} uninstalled: its client, secrets, process and route are gone");
            Ok(())
        }
    }
}

/// Shows the install's steps as they happen, as a bar on a terminal and as lines elsewhere.
async fn follow(api: &Api, id: &str) -> Result<(), CliError> {
    let terminal = std::io::stderr().is_terminal();
    let mut reported = 0;
    loop {
        let app = api.get(&format!("/apps/{id}")).await?;
        let steps = app["steps"].as_array().cloned().unwrap_or_default();
        let done = steps.iter().filter(|s| s["state"] == "done").count();
        let status = text(&app["status"]);
        if terminal {
            let running = steps
                .iter()
                .find(|s| s["state"] == "running")
                .map_or("", |s| s["name"].as_str().unwrap_or(""));
            let width = steps.len().max(1);
            let filled = if status == "installed" { width } else { done };
            eprint!(
                "\r[{}{}] {filled}/{width} {running:<10}",
                "#".repeat(filled * 4),
                "-".repeat((width - filled.min(width)) * 4)
            );
        } else {
            for step in steps.iter().skip(reported) {
                let state = step["state"].as_str().unwrap_or("");
                if state == "done" || state == "failed" {
                    eprintln!(
                        "{:<8} {state}: {}",
                        text(&step["name"]),
                        step["detail"].as_str().unwrap_or("")
                    );
                    reported += 1;
                } else {
                    break;
                }
            }
        }
        match status.as_str() {
            "installed" => {
                if terminal {
                    eprintln!();
                }
                println!("{id} is installed: {}", text(&app["base_url"]));
                return Ok(());
            }
            "failed" => {
                if terminal {
                    eprintln!();
                }
                return Err(CliError::Runtime(format!(
                    "{}; every step before it was undone",
                    app["error"].as_str().unwrap_or("the install failed")
                )));
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

fn words(v: &Value) -> String {
    let list: Vec<String> = v.as_array().into_iter().flatten().map(text).collect();
    if list.is_empty() {
        "(admins only)".into()
    } else {
        list.join(" ")
    }
}

/// The admin API of a running server.
struct Api {
    /// The server's base URL (the issuer).
    issuer: String,
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    fn new(access: &ServerAccess, config: &Config) -> Result<Self, CliError> {
        let token = access.token.clone().ok_or_else(|| {
            CliError::Usage(
                "an admin API token is needed: set STACKGATE_API_TOKEN or pass --token (create one with `stackgate token create`)".into(),
            )
        })?;
        let base = access
            .url
            .clone()
            .unwrap_or_else(|| config.issuer_str().to_owned());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        Ok(Self {
            issuer: base.trim_end_matches('/').to_owned(),
            base: format!("{}/api/v1", base.trim_end_matches('/')),
            token,
            http,
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, CliError> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| CliError::Runtime(format!("cannot reach {}: {e}", self.base)))?;
        let status = response.status();
        let body: Value = if status == reqwest::StatusCode::NO_CONTENT {
            Value::Null
        } else {
            response.json().await.unwrap_or(Value::Null)
        };
        if status.is_success() {
            return Ok(body);
        }
        let detail = body["detail"].as_str().unwrap_or("no detail").to_owned();
        Err(match status.as_u16() {
            400 | 404 | 409 | 422 => CliError::Usage(detail),
            401 | 403 => CliError::Usage(format!("the token was refused: {detail}")),
            _ => CliError::Runtime(format!("the server answered {status}: {detail}")),
        })
    }

    async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    async fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }
}
