//! The app manifest: what an app is, how it runs, and how it signs people in.
//!
//! Manifests are YAML written by people, so every problem is reported with the line and column
//! it is on, and all problems are reported at once. The types here are also the source of the
//! JSON Schema published in `charts/catalog/manifest.schema.json`.

use crate::AppsError;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};
use std::collections::BTreeMap;

/// One app, as its developer describes it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Lower-case letters, digits and '-', at most 40 characters; also the OIDC client id.
    #[schemars(with = "String", regex(pattern = r"^[a-z0-9][a-z0-9-]{0,39}$"))]
    pub id: Spanned<String>,
    /// The name people see.
    pub name: String,
    /// The app's version: MAJOR.MINOR.PATCH (semantic versioning).
    #[schemars(with = "String")]
    pub version: Spanned<String>,
    pub description: String,
    /// A URL or a data: URI of the app's icon.
    #[serde(default)]
    pub icon: Option<String>,
    /// Where the catalog lists it, e.g. `files`, `chat`, `video`, `sites`, `boards`.
    pub category: String,
    /// The app's own site (https).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub homepage: Option<Spanned<String>>,
    /// How the app is deployed.
    pub deploy: Deploy,
    /// How the app signs people in through Stackgate; absent for apps the edge proxy protects.
    #[serde(default)]
    pub oidc: Option<OidcNeeds>,
    /// What the edge proxy does for the app.
    #[serde(default)]
    pub proxy: ProxyNeeds,
    /// Who may reach the app, and how the app learns their role.
    pub access: Access,
    /// How `stackgate app check` drives the app in a browser.
    #[serde(default)]
    pub check: Option<CheckHints>,
}

/// What a browser needs to know to sign in to the app and see that it worked.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckHints {
    /// Where a person starts signing in to an OIDC app, e.g. `/login` (apps behind the edge
    /// send people to sign in by themselves).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub sign_in_path: Option<Spanned<String>>,
    /// Text the app shows once someone is signed in (default: their username).
    #[serde(default)]
    pub signed_in_text: Option<String>,
    /// Text the app shows when no one is signed in.
    #[serde(default)]
    pub signed_out_text: Option<String>,
}

/// Exactly one way of running the app.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Deploy {
    /// A local process, for a single machine and for development.
    Process(ProcessDeploy),
    /// Workloads in a Kubernetes cluster.
    Kubernetes(KubernetesDeploy),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessDeploy {
    /// A program name (looked up beside the `stackgate` binary, then on `PATH`) or an
    /// absolute path.
    #[schemars(with = "String")]
    pub command: Spanned<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables; values may use `${issuer}`, `${client_id}`, `${base_url}` and
    /// `${port}`. The client secret never goes here: see `oidc.deliver`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub env: BTreeMap<String, Spanned<String>>,
    /// The variable that tells the process which port to listen on (on 127.0.0.1).
    #[serde(default = "default_port_env")]
    pub port_env: String,
    /// A path that answers 2xx once the app is ready.
    #[serde(default = "default_health_path")]
    #[schemars(with = "String")]
    pub health_path: Spanned<String>,
    /// How long the app may take to become ready, in seconds.
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout_seconds: u32,
}

fn default_port_env() -> String {
    "PORT".into()
}

fn default_health_path() -> Spanned<String> {
    Spanned::new("/".into(), Location::UNKNOWN, Location::UNKNOWN)
}

fn default_ready_timeout() -> u32 {
    60
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesDeploy {
    /// Workloads in compact form; rendered to Deployment or StatefulSet, Service,
    /// PersistentVolumeClaim, Secret and ConfigMap.
    #[serde(default)]
    pub workloads: Vec<Workload>,
    /// A Helm chart deployed through a Flux `HelmRelease`.
    #[serde(default)]
    pub helm: Option<HelmChart>,
    /// How long the workloads may take to report ready, in seconds.
    #[serde(default = "default_cluster_ready_timeout")]
    pub ready_timeout_seconds: u32,
}

fn default_cluster_ready_timeout() -> u32 {
    600
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    pub image: String,
    /// The container port the Service points at.
    pub port: u16,
    /// `StatefulSet` when it has volumes that must follow the pod; `Deployment` otherwise.
    #[serde(default)]
    pub stateful: bool,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub volumes: Vec<Volume>,
    #[serde(default = "default_health_path")]
    #[schemars(with = "String")]
    pub health_path: Spanned<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub name: String,
    pub mount_path: String,
    /// A Kubernetes quantity, e.g. `10Gi`.
    pub size: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HelmChart {
    /// The chart's repository (an https Helm repository or an oci:// registry).
    pub repository: String,
    pub chart: String,
    pub version: String,
    /// Values given to the chart.
    #[serde(default)]
    pub values: serde_json::Value,
    /// The port of the chart's Service that the edge proxy forwards to.
    pub service: String,
    pub port: u16,
}

/// An OpenID Connect relying party's needs; Stackgate creates and wires its client from this.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcNeeds {
    /// Paths on the app's host that Stackgate may redirect to with a code (a query allowed).
    #[schemars(with = "Vec<String>")]
    pub redirect_paths: Vec<Spanned<String>>,
    /// Where the app sends people after signing them out.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub post_logout_path: Option<Spanned<String>>,
    /// Where the app takes Back-Channel Logout tokens (reached on the app's internal address).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub backchannel_logout_path: Option<Spanned<String>>,
    /// Where the app takes Front-Channel Logout requests (in the person's browser).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub frontchannel_logout_path: Option<Spanned<String>>,
    #[serde(default = "default_scopes")]
    #[schemars(with = "Vec<String>")]
    pub scopes: Vec<Spanned<String>>,
    /// The ID token algorithm the app can verify: ES256 (default), RS256 or EdDSA.
    #[serde(default)]
    pub id_token_alg: Option<String>,
    /// Where the app reads the issuer, client id and secret.
    pub deliver: Delivery,
}

fn default_scopes() -> Vec<Spanned<String>> {
    ["openid", "profile", "email"]
        .into_iter()
        .map(|s| Spanned::new(s.to_owned(), Location::UNKNOWN, Location::UNKNOWN))
        .collect()
}

/// Names under which the app finds its settings; the deploy kind says which are needed.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// Environment variable names (a process, or Kubernetes workloads).
    #[serde(default)]
    pub env: Option<SettingNames>,
    /// Keys in the generated Kubernetes Secret.
    #[serde(default)]
    pub secret_keys: Option<SettingNames>,
    /// Dotted paths in the Helm values.
    #[serde(default)]
    pub helm_values: Option<SettingNames>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingNames {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyNeeds {
    /// The edge asks for a Stackgate session and checks the access policy on every request.
    /// Off for apps that sign people in themselves through OIDC.
    #[serde(default = "yes")]
    pub protect: bool,
    /// Paths reachable without signing in (health checks, `/.well-known/`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub public_paths: Vec<Spanned<String>>,
}

impl Default for ProxyNeeds {
    fn default() -> Self {
        Self {
            protect: true,
            public_paths: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// Groups that reach the app as `user` when an admin installs it without choosing.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub default_groups: Vec<Spanned<String>>,
    /// How the app learns a person's role.
    pub roles: Roles,
}

/// The app's roles and where it reads them. Stackgate sends the value of the person's role
/// only: a `user` never carries the `admin` value.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Roles {
    /// The ID token and userinfo claim carrying the role (OIDC apps).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub claim: Option<Spanned<String>>,
    /// The request header carrying the role (apps behind the edge proxy).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub header: Option<Spanned<String>>,
    /// The value the app reads as an ordinary user.
    #[schemars(with = "String")]
    pub user: Spanned<String>,
    /// The value the app reads as an administrator.
    #[schemars(with = "String")]
    pub admin: Spanned<String>,
}

/// One thing wrong with a manifest, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field, as a dotted path (`oidc.redirect_paths[1]`).
    pub field: String,
    pub message: String,
    /// 1-based; 0 when the problem is about a field that is missing.
    pub line: u64,
    pub column: u64,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(f, "line {}, column {}: ", self.line, self.column)?;
        }
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Manifests are small; a bigger file is a mistake or an attack.
const MAX_MANIFEST_BYTES: usize = 256 * 1024;

impl Manifest {
    /// Parses and checks a manifest; every problem found is returned, each with its line.
    pub fn parse(source: &str) -> Result<Self, AppsError> {
        if source.len() > MAX_MANIFEST_BYTES {
            return Err(AppsError::Manifest(vec![Problem {
                field: String::new(),
                message: format!("is larger than {} KiB", MAX_MANIFEST_BYTES / 1024),
                line: 0,
                column: 0,
            }]));
        }
        // `yes`/`no`/`on`/`off` are strings, not booleans: a country code `no` stays `no`.
        let options = serde_saphyr::options! { strict_booleans: true };
        let manifest: Manifest = serde_saphyr::from_str_with_options(source, options)
            .map_err(|err| AppsError::Manifest(vec![syntax_problem(source, &err)]))?;
        let problems = crate::checks::check(&manifest);
        if problems.is_empty() {
            Ok(manifest)
        } else {
            Err(AppsError::Manifest(problems))
        }
    }

    pub fn id(&self) -> &str {
        &self.id.value
    }

    pub fn version(&self) -> &str {
        &self.version.value
    }
}

fn syntax_problem(source: &str, err: &serde_saphyr::Error) -> Problem {
    let text = err.without_snippet().to_string();
    // The crate appends " at line L, column C"; the location is reported on its own.
    let message = text
        .rfind(" at line ")
        .map_or(text.as_str(), |at| &text[..at])
        .to_owned();
    let (line, column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .or_else(|| key_line(source, &message))
        .unwrap_or((0, 0));
    Problem {
        field: String::new(),
        message,
        line,
        column,
    }
}

/// The parser reports an unknown key without its place; it is found by the key's name, when
/// exactly one line has that key.
fn key_line(source: &str, message: &str) -> Option<(u64, u64)> {
    let key = message.strip_prefix("unknown field `")?.split('`').next()?;
    let mut found = source.lines().enumerate().filter_map(|(i, line)| {
        let trimmed = line.trim_start().trim_start_matches("- ");
        let rest = trimmed.strip_prefix(key)?;
        rest.trim_start().starts_with(':').then(|| {
            let column = line.len() - trimmed.len() + 1;
            (i as u64 + 1, column as u64)
        })
    });
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// The problem at a spanned value.
pub(crate) fn at<T>(
    value: &Spanned<T>,
    field: impl Into<String>,
    message: impl Into<String>,
) -> Problem {
    let location = value.referenced;
    let known = location != Location::UNKNOWN;
    Problem {
        field: field.into(),
        message: message.into(),
        line: if known { location.line() } else { 0 },
        column: if known { location.column() } else { 0 },
    }
}

/// The JSON Schema of manifests, as published in the repository.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Manifest);
    serde_json::to_value(schema).unwrap_or(serde_json::Value::Null)
}
