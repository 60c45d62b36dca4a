//! The command line.

use crate::logging::LogFormat;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "stackgate",
    version,
    about = "One login and one logout for every app of your organisation"
)]
pub struct Cli {
    /// TOML configuration file; `STACKGATE_*` environment variables override it.
    #[arg(
        short,
        long,
        global = true,
        env = "STACKGATE_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Log format (overrides `log_format`).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (creates the data directory and database on first start).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage OpenID Connect clients (the apps that sign in through Stackgate).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage the token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Rotate the master key that seals signing keys and TOTP secrets at rest.
    #[command(subcommand)]
    MasterKey(MasterKeyCommand),
    /// Install, list and remove apps (talks to the running server's admin API).
    #[command(subcommand)]
    App(AppCommand),
    /// Run the demo app (the process driver starts it; settings come from its environment).
    #[command(hide = true)]
    DemoApp,
    /// Measure password hashing and the admin API on this machine.
    Bench(BenchArgs),
}

/// How the `app` commands reach the server.
#[derive(Debug, Args)]
pub struct ServerAccess {
    /// The server's base URL (default: the configured issuer).
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// An admin's API token (`stackgate token create`).
    #[arg(
        long,
        global = true,
        env = "STACKGATE_API_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// List the apps that can be installed (no server needed).
    Catalog,
    /// List installed apps.
    List {
        #[command(flatten)]
        server: ServerAccess,
    },
    /// Install an app from the catalog, showing each step; undone entirely if a step fails.
    Install {
        id: String,
        /// A group that reaches the app as a user (repeat; default: the manifest's).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// A group that reaches the app as an admin (repeat).
        #[arg(long = "admin-group")]
        admin_groups: Vec<String>,
        /// none, patch or minor.
        #[arg(long)]
        update_policy: Option<String>,
        /// Show what would be created, and create nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        server: ServerAccess,
    },
    /// Remove an app and everything installing it created (data volumes stay unless --purge).
    Uninstall {
        id: String,
        #[arg(long)]
        purge: bool,
        #[command(flatten)]
        server: ServerAccess,
    },
    /// Move an app to a newer catalog version; the old one is put back if the new one fails.
    Upgrade {
        id: String,
        /// The version (default: the newest in the catalog).
        #[arg(long)]
        version: Option<String>,
        #[command(flatten)]
        server: ServerAccess,
    },
    /// Show an app and its install's steps.
    Status {
        id: String,
        #[command(flatten)]
        server: ServerAccess,
    },
    /// Check a manifest file: its shape and its meaning, with line numbers (no server needed).
    Validate { manifest: PathBuf },
    /// Drive a real sign-in and sign-out of an installed app in headless Chromium, step by
    /// step (for an app's own CI); fails when a step does.
    Check {
        id: String,
        /// The person to sign in as (a test account that may use the app).
        #[arg(long)]
        username: String,
        /// Read their password from the first line of standard input (otherwise
        /// STACKGATE_CHECK_PASSWORD, otherwise a prompt).
        #[arg(long)]
        password_stdin: bool,
        /// The Chromium binary (default: Debian's).
        #[arg(long)]
        chromium: Option<PathBuf>,
        #[command(flatten)]
        server: ServerAccess,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration without starting; prints the effective settings.
    Check,
}

#[derive(Debug, Args)]
pub struct PasswordInput {
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Add {
        username: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        /// Make the user an admin (member of `admins`).
        #[arg(long)]
        admin: bool,
        /// Create the user without a password.
        #[arg(long, conflicts_with = "password_stdin")]
        no_password: bool,
        #[command(flatten)]
        password: PasswordInput,
    },
    /// List users.
    List {
        /// Part of a username, email or display name.
        #[arg(long)]
        query: Option<String>,
    },
    /// Disable a user: they can no longer sign in, and their tokens stop working.
    Disable { username: String },
    /// Enable a disabled user.
    Enable { username: String },
    /// Set a user's password.
    Passwd {
        username: String,
        #[command(flatten)]
        password: PasswordInput,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group.
    Add {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// List groups.
    List,
    /// Add a user to a group.
    AddMember { group: String, username: String },
    /// Remove a user from a group.
    RemoveMember { group: String, username: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user; prints the secret once.
    Create {
        /// The user the token acts as.
        #[arg(long)]
        user: String,
        /// What the token is for.
        #[arg(long)]
        name: String,
        /// Days until it expires (no expiry when absent).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Revoke a token by id.
    Revoke { id: String },
    /// List tokens.
    List,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its secret once.
    Add {
        /// Client id (a-z, 0-9, '-', '_', '.').
        id: String,
        #[arg(long)]
        name: String,
        /// Allowed redirect URI (repeat for several).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// Allowed post-logout redirect URI (repeat for several).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// A public client (single-page or native app): no secret, PKCE required.
        #[arg(long)]
        public: bool,
        /// The organisation's own app: no consent page.
        #[arg(long)]
        first_party: bool,
        /// ID token algorithm: ES256 (default), RS256 or EdDSA.
        #[arg(long)]
        id_token_alg: Option<String>,
    },
    /// List clients.
    List,
    /// Replace a client's secret; prints the new one once.
    RotateSecret { id: String },
    /// Remove a client with its grants and tokens.
    Remove { id: String },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create new signing keys now; the old ones stay published until their tokens expire.
    Rotate,
    /// List the published signing keys.
    List,
}

#[derive(Debug, Subcommand)]
pub enum MasterKeyCommand {
    /// With the key file in data_dir: write a new key beside it; the next start reseals every
    /// secret under it and makes it the key file.
    Rotate,
    /// Print a new random key (for `master_key` when it comes from the configuration).
    Generate,
    /// Show the current key's id and whether anything is still sealed under another key.
    Status,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Password hashes to time.
    #[arg(long, default_value_t = 30)]
    pub hashes: u32,
    /// Users to seed before timing the list endpoint.
    #[arg(long, default_value_t = 10_000)]
    pub users: u32,
    /// Sequential list requests to time.
    #[arg(long, default_value_t = 2_000)]
    pub requests: u32,
    /// Concurrent clients for the throughput run.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u32,
    /// Database to benchmark on (default: a temporary SQLite file).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Operations per OpenID Connect measurement (code exchanges, refreshes, userinfo, JWKS).
    #[arg(long, default_value_t = 20_000)]
    pub oidc_requests: u32,
    /// Only this part: hash, list, login or oidc (default: all).
    #[arg(long)]
    pub only: Option<String>,
}
