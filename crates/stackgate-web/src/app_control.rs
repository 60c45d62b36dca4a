//! What the web layer asks of the app registry (which lives in a crate that depends on this
//! one), and the views the API shows of it.

use serde::{Deserialize, Serialize};
use stackgate_identity::Actor;
use std::{future::Future, pin::Pin};
use utoipa::ToSchema;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait AppControl: Send + Sync {
    /// The apps that can be installed, each in its newest version.
    fn catalog(&self) -> Result<Vec<CatalogEntryView>, AppFailure>;
    /// Checks a manifest as an app developer wrote it.
    fn validate(&self, manifest: &str) -> Result<CatalogEntryView, AppFailure>;
    /// What installing would create, without creating anything.
    fn plan(&self, request: InstallRequest) -> BoxFuture<'_, Result<PlanView, AppFailure>>;
    /// Starts an install; its progress is read through [`AppControl::status`].
    fn install(
        &self,
        request: InstallRequest,
        actor: Actor,
    ) -> BoxFuture<'_, Result<AppView, AppFailure>>;
    /// One app: installed, being installed, or the last install that failed.
    fn status(&self, id: String) -> BoxFuture<'_, Result<AppView, AppFailure>>;
    fn list(&self) -> BoxFuture<'_, Result<Vec<AppView>, AppFailure>>;
    /// Removes every trace of an app; its data volumes only with `purge`.
    fn uninstall(
        &self,
        id: String,
        purge: bool,
        actor: Actor,
    ) -> BoxFuture<'_, Result<(), AppFailure>>;
    /// Moves an app to a newer catalog version, rolling back when it is not ready in time.
    fn upgrade(
        &self,
        id: String,
        version: Option<String>,
        actor: Actor,
    ) -> BoxFuture<'_, Result<AppView, AppFailure>>;
    /// Applies every app's update policy now.
    fn apply_updates(&self) -> BoxFuture<'_, Result<Vec<UpdateView>, AppFailure>>;
    /// The installed apps `username`, a member of `groups`, may reach, for the launcher.
    fn launcher(
        &self,
        username: String,
        groups: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<LauncherEntry>, AppFailure>>;
    /// Who reaches an app, with which role; in force at the edge at once.
    fn set_access(
        &self,
        id: String,
        access: AccessRequest,
        actor: Actor,
    ) -> BoxFuture<'_, Result<AppView, AppFailure>>;
}

/// Why the registry refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AppFailure {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{field}: {detail}")]
    Invalid { field: String, detail: String },
    #[error("the manifest is not valid")]
    Manifest(Vec<ManifestProblemView>),
    #[error("{0}")]
    Conflict(String),
    /// A step failed; everything done before it was undone.
    #[error("step {step} failed: {reason}")]
    Step { step: String, reason: String },
    #[error("{0}")]
    Internal(String),
    /// Done, but some parts could not be removed; says which.
    #[error("{0}")]
    Incomplete(String),
}

/// One problem in a manifest, with its place.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ManifestProblemView {
    pub field: String,
    pub message: String,
    /// 1-based; absent when the problem is a missing field.
    pub line: Option<u64>,
    pub column: Option<u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CatalogEntryView {
    pub id: String,
    pub name: String,
    pub version: String,
    pub description: String,
    pub category: String,
    pub icon: Option<String>,
    pub homepage: Option<String>,
    /// `process` or `kubernetes`.
    pub deploy: &'static str,
    /// `oidc` when the app signs people in itself, `proxy` when the edge does it for it.
    pub sign_in: &'static str,
    /// Groups given the user role when an admin does not choose.
    pub default_groups: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    /// A catalog id.
    pub app: String,
    /// Groups given the user role (default: the manifest's `default_groups`).
    #[serde(default)]
    pub user_groups: Option<Vec<String>>,
    /// Groups given the admin role.
    #[serde(default)]
    pub admin_groups: Vec<String>,
    /// `none`, `patch` (default) or `minor`.
    #[serde(default)]
    pub update_policy: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessRequest {
    pub user_groups: Vec<String>,
    #[serde(default)]
    pub admin_groups: Vec<String>,
}

/// Everything an install would create, in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlanView {
    pub app: String,
    pub version: String,
    pub base_url: String,
    pub objects: Vec<PlannedObjectView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlannedObjectView {
    /// The install step that creates it.
    pub step: String,
    /// What it is (`oidc-client`, `env-file`, `process`, `proxy-route`, `Deployment`, ...).
    pub kind: String,
    pub name: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AppView {
    pub id: String,
    pub name: String,
    pub version: String,
    /// `installing`, `installed` or `failed` (a failed install left nothing behind).
    pub status: String,
    pub base_url: String,
    pub user_groups: Vec<String>,
    pub admin_groups: Vec<String>,
    pub update_policy: String,
    /// `oidc` when the app signs people in itself, `proxy` when the edge does it for it.
    pub sign_in: &'static str,
    /// What `stackgate app check` needs to drive the app in a browser.
    pub check: Option<CheckView>,
    /// The app's process, for apps this Stackgate runs as processes.
    pub pid: Option<u32>,
    /// How often the process was started again after it ended or stopped answering.
    pub restarts: u32,
    /// The install's steps, while it runs and after it failed.
    pub steps: Vec<StepView>,
    /// Why the install failed.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepView {
    pub name: String,
    /// `pending`, `running`, `done`, `failed` or `undone`.
    pub state: String,
    pub detail: Option<String>,
}

/// What applying an update policy did to one app.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UpdateView {
    pub app: String,
    pub from: String,
    pub to: String,
    /// `updated`, or `failed: …` (the app is back on `from`).
    pub outcome: String,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRequest {
    /// A catalog version (default: the newest).
    #[serde(default)]
    pub version: Option<String>,
}

/// An app in a person's launcher.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LauncherEntry {
    pub id: String,
    pub name: String,
    pub description: String,
    pub url: String,
    pub icon: Option<String>,
    /// `user` or `admin`.
    pub role: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckView {
    pub sign_in_path: Option<String>,
    pub signed_in_text: Option<String>,
    pub signed_out_text: Option<String>,
}
