//! Configuration: a TOML file plus `STACKGATE_*` environment variables (which win), read into
//! one typed [`Config`] and validated before anything starts. Keys are flat, so that every file
//! key has exactly one environment twin: `session_idle_timeout` ↔ `STACKGATE_SESSION_IDLE_TIMEOUT`.

use crate::logging::LogFormat;
use stackgate_identity::{Argon2Params, PasswordPolicy};
use std::{
    collections::BTreeMap,
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
};
use url::Url;

pub const ENV_PREFIX: &str = "STACKGATE_";

/// Environment variables with the prefix that are not config keys.
const ENV_NOT_KEYS: &[&str] = &[
    "STACKGATE_CONFIG",
    "STACKGATE_API_TOKEN",
    "STACKGATE_CHECK_PASSWORD",
];
const ENV_IGNORED_PREFIXES: &[&str] = &["STACKGATE_TEST_"];

/// Every key, with its documentation; the README's reference and `config check` follow it.
pub const KEYS: &[(&str, &str)] = &[
    (
        "data_dir",
        "folder for the SQLite database and key files (default ./stackgate-data)",
    ),
    (
        "database_url",
        "sqlite://PATH or postgres://USER@HOST/DB (default: SQLite in data_dir)",
    ),
    (
        "database_max_connections",
        "connection pool size, 1-1000 (default 16)",
    ),
    (
        "listen",
        "address and port to listen on (default 127.0.0.1:8080)",
    ),
    (
        "issuer",
        "public base URL; https unless the host is loopback (default http://localhost:PORT)",
    ),
    (
        "organisation_name",
        "shown on every page (default Stackgate)",
    ),
    (
        "organisation_logo",
        "path of a PNG, SVG, JPEG or WebP logo (at most 512 KiB) shown on every page (default none)",
    ),
    (
        "brand_colour",
        "the pages' accent colour, #rrggbb (default #1f5fbf)",
    ),
    (
        "log",
        "log filter, e.g. info or stackgate=debug,info (default info)",
    ),
    ("log_format", "human or json (default human)"),
    (
        "password_min_length",
        "minimum password length in characters, 8-128 (default 12)",
    ),
    (
        "argon2_memory_kib",
        "argon2id memory in KiB, at least 19456 (default 19456)",
    ),
    (
        "argon2_iterations",
        "argon2id passes, at least 2 (default 2)",
    ),
    ("argon2_parallelism", "argon2id lanes, 1-16 (default 1)"),
    (
        "session_idle_timeout",
        "seconds a sign-in session may stay unused (default 28800 = 8 h)",
    ),
    (
        "session_lifetime",
        "seconds a sign-in session lives at most (default 604800 = 7 days)",
    ),
    (
        "setup_link_ttl",
        "seconds the first-run setup link stays valid (default 3600)",
    ),
    (
        "shutdown_grace",
        "seconds in-flight requests get to finish at shutdown (default 30)",
    ),
    (
        "master_key",
        "base64 of 32 random bytes sealing keys at rest (default: data_dir/master.key, created once)",
    ),
    (
        "previous_master_keys",
        "only while rotating the master key: the keys it replaces, comma-separated; values they sealed are resealed at start (default none)",
    ),
    (
        "signing_key_rotation",
        "seconds between automatic signing key rotations, 3600-31536000 (default 2592000 = 30 days)",
    ),
    (
        "mfa_policy",
        "what every sign-in must use: optional, required or phishing_resistant (default optional)",
    ),
    (
        "smtp_url",
        "the mail server for invitations and password resets: smtps://USER:PASSWORD@HOST[:PORT] (TLS), smtp://... (STARTTLS, required) or smtp+plain://127.0.0.1:PORT (this machine only); without it, admins pass links on themselves (default none)",
    ),
    (
        "smtp_ca_file",
        "a PEM file with the certificate authority of your mail server, when the system does not already trust it (default none)",
    ),
    (
        "smtp_from",
        "the sender of Stackgate's email, \"Name <address>\" or an address (default \"ORGANISATION <stackgate@ISSUER-HOST>\")",
    ),
    (
        "invitation_lifetime",
        "seconds an invitation link stays valid, 3600-2592000 (default 604800 = 7 days)",
    ),
    (
        "password_reset_lifetime",
        "seconds a password-reset link stays valid, 600-604800 (default 86400 = 1 day)",
    ),
    (
        "apps_domain",
        "installed apps get the host APP.apps_domain at the edge proxy (default localhost, which browsers resolve to this machine)",
    ),
    (
        "apps_kubernetes_namespace_prefix",
        "each app that runs on Kubernetes gets the namespace PREFIX-ID, when Stackgate runs in a cluster or KUBECONFIG is set; at most 22 characters (default stackgate-apps)",
    ),
    (
        "apps_catalog_dir",
        "a folder of your own app manifests (*.yaml), added to the shipped catalog; read again whenever the catalog is used (default none)",
    ),
    (
        "apps_update_interval",
        "seconds between applying installed apps' update policies, 60-604800 (default 3600)",
    ),
    (
        "apps_uids",
        "user ids FIRST-LAST that process apps get one each of, with the group of the same number, when Stackgate runs as root; off runs them as Stackgate's own user (default 60578-61183, ids systemd leaves unused)",
    ),
    (
        "apps_test_fail_step",
        "a test hook: makes this app install step fail (client, secret, deploy, route or ready), to prove nothing is left behind (default none)",
    ),
];

/// A configuration value that cannot be used. Displays as one line: `key: what is wrong`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// `FIRST-LAST`: never root's id, and below 2^31, which some tools read as negative.
fn uid_range(text: &str) -> Option<std::ops::RangeInclusive<u32>> {
    let (first, last) = text.split_once('-')?;
    let (first, last): (u32, u32) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
    (1 <= first && first <= last && last < 1 << 31).then_some(first..=last)
}

pub(crate) fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub database_max_connections: u32,
    pub listen: SocketAddr,
    pub issuer: Url,
    pub organisation_name: String,
    /// The logo file, checked at load.
    pub organisation_logo: Option<PathBuf>,
    /// `#rrggbb`.
    pub brand_colour: Option<String>,
    pub log: String,
    pub log_format: LogFormat,
    pub password: PasswordPolicy,
    pub argon2: Argon2Params,
    pub session_idle_timeout: i64,
    pub session_lifetime: i64,
    pub setup_link_ttl: i64,
    pub shutdown_grace: u64,
    /// From config; when absent the key file in `data_dir` is used (and created).
    pub master_key: Option<String>,
    /// Keys being rotated out: still opened, never used to seal.
    pub previous_master_keys: Vec<String>,
    pub signing_key_rotation: i64,
    /// The global sign-in policy; groups may ask for more.
    pub mfa_policy: stackgate_identity::MfaPolicy,
    /// Outgoing email, checked at load (the URL may hold the server's password).
    pub smtp_url: Option<String>,
    /// The mail server's own CA, read at load.
    pub smtp_ca: Option<Vec<u8>>,
    pub smtp_from: String,
    pub invitation_lifetime: i64,
    pub password_reset_lifetime: i64,
    /// The edge proxy, when `proxy_listen` is set.
    pub proxy: Option<crate::proxy_config::ProxyConfig>,
    pub apps_domain: String,
    pub apps_catalog_dir: Option<PathBuf>,
    pub apps_kubernetes_namespace_prefix: String,
    pub apps_update_interval: u64,
    /// `None`: process apps run as Stackgate's own user.
    pub apps_uids: Option<std::ops::RangeInclusive<u32>>,
    pub apps_test_fail_step: Option<String>,
}

/// A raw value: from the file (typed by TOML) or the environment (always text).
enum Raw {
    File(toml::Value),
    Env(String),
}

pub(crate) struct Values(BTreeMap<String, Raw>);

/// Whether `key` is a setting, of the core or of the proxy.
pub(crate) fn is_key(key: &str) -> bool {
    KEYS.iter()
        .chain(crate::proxy_config::KEYS)
        .any(|(k, _)| *k == key)
}

impl Values {
    pub(crate) fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// An array given in the file (tables, for `[[key]]`).
    pub(crate) fn file_array(&self, key: &str) -> Result<Option<&Vec<toml::Value>>, ConfigError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Raw::File(toml::Value::Array(items))) => Ok(Some(items)),
            Some(Raw::File(other)) => Err(err(
                key,
                format!("expected [[{key}]] tables, found {}", other.type_str()),
            )),
            Some(Raw::Env(_)) => Err(err(key, "can be set in the config file only")),
        }
    }

    pub(crate) fn text(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Raw::Env(s)) => Ok(Some(s.clone())),
            Some(Raw::File(toml::Value::String(s))) => Ok(Some(s.clone())),
            Some(Raw::File(other)) => Err(err(
                key,
                format!("expected a string, found {}", other.type_str()),
            )),
        }
    }

    pub(crate) fn int(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, ConfigError> {
        let value = match self.0.get(key) {
            None => return Ok(None),
            Some(Raw::File(toml::Value::Integer(i))) => *i,
            Some(Raw::Env(s)) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| err(key, format!("expected a whole number, found {s:?}")))?,
            Some(Raw::File(other)) => {
                return Err(err(
                    key,
                    format!("expected a whole number, found {}", other.type_str()),
                ));
            }
        };
        if !(min..=max).contains(&value) {
            return Err(err(
                key,
                format!("must be between {min} and {max}, found {value}"),
            ));
        }
        Ok(Some(value))
    }

    fn u32(&self, key: &str, min: u32, max: u32) -> Result<Option<u32>, ConfigError> {
        Ok(self
            .int(key, i64::from(min), i64::from(max))?
            .and_then(|v| u32::try_from(v).ok()))
    }
}

impl Config {
    /// Reads the file (if given) and the environment pairs, and validates the result.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut values = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| err("config", format!("cannot read {}: {e}", path.display())))?;
            let table: toml::Table = toml::from_str(&text).map_err(|e| {
                let detail = e.message().to_owned();
                let at = e
                    .span()
                    .map(|span| {
                        let line = text[..span.start].matches('\n').count() + 1;
                        format!(" (line {line})")
                    })
                    .unwrap_or_default();
                err(
                    "config",
                    format!("{} is not valid TOML{at}: {detail}", path.display()),
                )
            })?;
            for (key, value) in table {
                if !is_key(&key) {
                    return Err(err(
                        &key,
                        format!(
                            "unknown key in {}; see `stackgate config check --help` or the README",
                            path.display()
                        ),
                    ));
                }
                values.insert(key, Raw::File(value));
            }
        }
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if ENV_NOT_KEYS.contains(&name.as_str())
                || ENV_IGNORED_PREFIXES.iter().any(|p| name.starts_with(p))
            {
                continue;
            }
            let key = rest.to_ascii_lowercase();
            if !is_key(&key) {
                return Err(err(
                    &name,
                    "unknown setting; check the spelling against the README's configuration reference",
                ));
            }
            values.insert(key, Raw::Env(value));
        }
        Self::from_values(&Values(values))
    }

    fn from_values(v: &Values) -> Result<Self, ConfigError> {
        let data_dir = PathBuf::from(
            v.text("data_dir")?
                .unwrap_or_else(|| "./stackgate-data".into()),
        );
        if data_dir.as_os_str().is_empty() {
            return Err(err("data_dir", "must not be empty"));
        }
        let database_url = match v.text("database_url")? {
            Some(url) => {
                check_database_url(&url)?;
                url
            }
            None => format!("sqlite://{}", data_dir.join("stackgate.db").display()),
        };
        let listen: SocketAddr = match v.text("listen")? {
            Some(s) => s.trim().parse().map_err(|_| {
                err("listen", format!("expected an address and port such as 127.0.0.1:8080 or [::]:443, found {s:?}"))
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        let issuer = match v.text("issuer")? {
            Some(s) => check_issuer(&s)?,
            None => Url::parse(&format!("http://localhost:{}", listen.port()))
                .map_err(|e| err("issuer", e.to_string()))?,
        };
        let mfa_policy = match v.text("mfa_policy")? {
            Some(text) => {
                stackgate_identity::MfaPolicy::parse("mfa_policy", &text).map_err(|_| {
                    err(
                        "mfa_policy",
                        format!("{text:?} is not one of optional, required, phishing_resistant"),
                    )
                })?
            }
            None => stackgate_identity::MfaPolicy::Optional,
        };
        if mfa_policy == stackgate_identity::MfaPolicy::PhishingResistant
            && issuer.domain().is_none()
        {
            return Err(err(
                "mfa_policy",
                "phishing_resistant needs passkeys or security keys, and WebAuthn needs a host name in issuer, not an IP address",
            ));
        }
        let organisation_logo = match v.text("organisation_logo")? {
            Some(path) => Some(check_logo(&path)?),
            None => None,
        };
        let brand_colour = match v.text("brand_colour")? {
            Some(colour) => {
                let ok = colour.len() == 7
                    && colour.starts_with('#')
                    && colour[1..].chars().all(|c| c.is_ascii_hexdigit());
                if !ok {
                    return Err(err(
                        "brand_colour",
                        format!("{colour:?} is not a colour like #1f5fbf"),
                    ));
                }
                Some(colour.to_ascii_lowercase())
            }
            None => None,
        };
        let organisation_name = v
            .text("organisation_name")?
            .unwrap_or_else(|| "Stackgate".into());
        if organisation_name.trim().is_empty() || organisation_name.chars().count() > 100 {
            return Err(err("organisation_name", "must be 1 to 100 characters"));
        }
        let log_format = match v.text("log_format")?.as_deref() {
            None | Some("human") => LogFormat::Human,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(err(
                    "log_format",
                    format!("expected \"human\" or \"json\", found {other:?}"),
                ));
            }
        };
        let argon2 = Argon2Params {
            memory_kib: v
                .u32("argon2_memory_kib", 0, u32::MAX)?
                .unwrap_or(Argon2Params::OWASP_MINIMUM.memory_kib),
            iterations: v
                .u32("argon2_iterations", 0, u32::MAX)?
                .unwrap_or(Argon2Params::OWASP_MINIMUM.iterations),
            parallelism: v
                .u32("argon2_parallelism", 0, u32::MAX)?
                .unwrap_or(Argon2Params::OWASP_MINIMUM.parallelism),
        };
        argon2.check().map_err(|e| match e {
            stackgate_identity::IdentityError::Invalid { field, message } => err(field, message),
            other => err("argon2", other.to_string()),
        })?;
        // At least 5 minutes: sessions note activity once a minute, so shorter would end busy ones.
        let session_idle_timeout = v
            .int("session_idle_timeout", 300, 31_536_000)?
            .unwrap_or(28_800);
        let session_lifetime = v
            .int("session_lifetime", 60, 31_536_000)?
            .unwrap_or(604_800);
        if session_idle_timeout > session_lifetime {
            return Err(err(
                "session_idle_timeout",
                "must not be longer than session_lifetime",
            ));
        }
        let smtp_from = v.text("smtp_from")?.unwrap_or_else(|| {
            format!(
                "{} <stackgate@{}>",
                organisation_name.replace(['<', '>', '"', ','], ""),
                issuer.host_str().unwrap_or("localhost")
            )
        });
        let smtp_url = v.text("smtp_url")?;
        let smtp_ca = match v.text("smtp_ca_file")? {
            Some(path) => Some(
                std::fs::read(&path)
                    .map_err(|e| err("smtp_ca_file", format!("cannot read {path}: {e}")))?,
            ),
            None => None,
        };
        if let Some(url) = &smtp_url {
            // Checked now, so a typo is found at start and not at the first invitation.
            stackgate_mail::Mailer::with_ca(url, &smtp_from, smtp_ca.as_deref()).map_err(|e| {
                match e {
                    stackgate_mail::MailError::Address { .. } => err("smtp_from", e.to_string()),
                    other => err(
                        "smtp_url",
                        other
                            .to_string()
                            .trim_start_matches("smtp_url: ")
                            .to_owned(),
                    ),
                }
            })?;
        } else if v.has("smtp_from") {
            stackgate_mail::Mailer::new("smtp+plain://127.0.0.1", &smtp_from)
                .map_err(|e| err("smtp_from", e.to_string()))?;
        }
        Ok(Self {
            data_dir,
            database_url,
            database_max_connections: v.u32("database_max_connections", 1, 1000)?.unwrap_or(16),
            listen,
            issuer,
            organisation_name,
            organisation_logo,
            brand_colour,
            log: check_log_filter(v.text("log")?.unwrap_or_else(|| "info,sqlx=warn".into()))?,
            log_format,
            password: PasswordPolicy {
                min_length: v.u32("password_min_length", 8, 128)?.unwrap_or(12) as usize,
            },
            argon2,
            session_idle_timeout,
            session_lifetime,
            setup_link_ttl: v.int("setup_link_ttl", 60, 604_800)?.unwrap_or(3600),
            shutdown_grace: v
                .int("shutdown_grace", 0, 3600)?
                .unwrap_or(30)
                .unsigned_abs(),
            master_key: match v.text("master_key")? {
                Some(key) => {
                    stackgate_oidc::MasterKey::from_base64(&key)
                        .map_err(|e| err("master_key", e.to_string()))?;
                    Some(key)
                }
                None => None,
            },
            previous_master_keys: match v.text("previous_master_keys")? {
                Some(keys) => keys
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .enumerate()
                    .map(|(i, key)| {
                        stackgate_oidc::MasterKey::from_base64(key)
                            .map(|_| key.to_owned())
                            .map_err(|e| err("previous_master_keys", format!("key {}: {e}", i + 1)))
                    })
                    .collect::<Result<_, _>>()?,
                None => Vec::new(),
            },
            signing_key_rotation: v
                .int("signing_key_rotation", 3600, 31_536_000)?
                .unwrap_or(2_592_000),
            mfa_policy,
            smtp_url,
            smtp_ca,
            smtp_from,
            invitation_lifetime: v
                .int("invitation_lifetime", 3600, 2_592_000)?
                .unwrap_or(604_800),
            password_reset_lifetime: v
                .int("password_reset_lifetime", 600, 604_800)?
                .unwrap_or(86_400),
            proxy: crate::proxy_config::ProxyConfig::from_values(v)?,
            apps_domain: {
                let domain = v
                    .text("apps_domain")?
                    .unwrap_or_else(|| "localhost".into())
                    .trim_end_matches('.')
                    .to_ascii_lowercase();
                let label_ok = |l: &str| {
                    (1..=63).contains(&l.len())
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                };
                if domain.len() > 200 || !domain.split('.').all(label_ok) {
                    return Err(err(
                        "apps_domain",
                        format!("{domain:?} is not a domain name"),
                    ));
                }
                domain
            },
            apps_catalog_dir: match v.text("apps_catalog_dir")? {
                Some(dir) => {
                    let dir = PathBuf::from(dir);
                    if !dir.is_dir() {
                        return Err(err(
                            "apps_catalog_dir",
                            format!("{} is not a folder", dir.display()),
                        ));
                    }
                    Some(dir)
                }
                None => None,
            },
            apps_kubernetes_namespace_prefix: {
                let ns = v
                    .text("apps_kubernetes_namespace_prefix")?
                    .unwrap_or_else(|| "stackgate-apps".into());
                // PREFIX-ID must fit a namespace name (63), with ids of up to 40.
                let ok = (1..=22).contains(&ns.len())
                    && !ns.starts_with('-')
                    && !ns.ends_with('-')
                    && ns
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                if !ok {
                    return Err(err(
                        "apps_kubernetes_namespace_prefix",
                        format!("{ns:?} is not 1 to 22 of a-z, 0-9 and '-'"),
                    ));
                }
                ns
            },
            apps_update_interval: v
                .int("apps_update_interval", 60, 604_800)?
                .unwrap_or(3600)
                .unsigned_abs(),
            apps_uids: match v.text("apps_uids")? {
                None => Some(stackgate_apps::app_users::DEFAULT_APP_UIDS),
                Some(text) if text == "off" => None,
                Some(text) => Some(uid_range(&text).ok_or_else(|| {
                    err(
                        "apps_uids",
                        format!(
                            "{text:?} is not FIRST-LAST with 1 <= FIRST <= LAST < 2147483648, or off"
                        ),
                    )
                })?),
            },
            apps_test_fail_step: match v.text("apps_test_fail_step")? {
                Some(step) if stackgate_apps::STEPS.contains(&step.as_str()) => Some(step),
                Some(step) => {
                    return Err(err(
                        "apps_test_fail_step",
                        format!(
                            "{step:?} is not one of {}",
                            stackgate_apps::STEPS.join(", ")
                        ),
                    ));
                }
                None => None,
            },
        })
    }

    /// The issuer exactly as tokens carry it: no trailing slash (a URL parser adds one to a
    /// bare host, and `iss` must compare equal to what relying parties configure).
    pub fn issuer_str(&self) -> &str {
        self.issuer.as_str().trim_end_matches('/')
    }

    /// The effective settings as `key = value` lines, with the database password hidden.
    pub fn describe(&self) -> String {
        let mut db = Url::parse(&self.database_url).ok();
        if let Some(url) = db.as_mut().filter(|u| u.password().is_some()) {
            let _ = url.set_password(Some("***"));
        }
        let database_url = db
            .map(|u| u.to_string())
            .unwrap_or_else(|| self.database_url.clone());
        [
            format!("data_dir = {:?}", self.data_dir.display().to_string()),
            format!("database_url = {database_url:?}"),
            format!(
                "database_max_connections = {}",
                self.database_max_connections
            ),
            format!("listen = \"{}\"", self.listen),
            format!("issuer = \"{}\"", self.issuer_str()),
            format!("organisation_name = {:?}", self.organisation_name),
            match &self.organisation_logo {
                Some(path) => format!("organisation_logo = {:?}", path.display().to_string()),
                None => "organisation_logo = \"(none)\"".to_owned(),
            },
            match &self.brand_colour {
                Some(colour) => format!("brand_colour = {colour:?}"),
                None => "brand_colour = \"#1f5fbf\"".to_owned(),
            },
            format!("log = {:?}", self.log),
            format!(
                "log_format = \"{}\"",
                match self.log_format {
                    LogFormat::Human => "human",
                    LogFormat::Json => "json",
                }
            ),
            format!("password_min_length = {}", self.password.min_length),
            format!("argon2_memory_kib = {}", self.argon2.memory_kib),
            format!("argon2_iterations = {}", self.argon2.iterations),
            format!("argon2_parallelism = {}", self.argon2.parallelism),
            format!("session_idle_timeout = {}", self.session_idle_timeout),
            format!("session_lifetime = {}", self.session_lifetime),
            format!("setup_link_ttl = {}", self.setup_link_ttl),
            format!("shutdown_grace = {}", self.shutdown_grace),
            format!(
                "master_key = {}",
                if self.master_key.is_some() {
                    "\"(set, hidden)\""
                } else {
                    "\"(data_dir/master.key)\""
                }
            ),
            format!(
                "previous_master_keys = \"({} set, hidden)\"",
                self.previous_master_keys.len()
            ),
            format!("signing_key_rotation = {}", self.signing_key_rotation),
            format!("mfa_policy = \"{}\"", self.mfa_policy.as_str()),
            match self
                .smtp_url
                .as_deref()
                .map(stackgate_mail::without_password)
            {
                Some(shown) => format!("smtp_url = {shown:?}"),
                None => "smtp_url = \"(none: admins pass links on)\"".to_owned(),
            },
            format!("smtp_from = {:?}", self.smtp_from),
            format!(
                "smtp_ca_file = {}",
                if self.smtp_ca.is_some() {
                    "\"(set)\""
                } else {
                    "\"(none: the system's roots)\""
                }
            ),
            format!("invitation_lifetime = {}", self.invitation_lifetime),
            format!("password_reset_lifetime = {}", self.password_reset_lifetime),
            format!("apps_domain = {:?}", self.apps_domain),
            match &self.apps_catalog_dir {
                Some(dir) => format!("apps_catalog_dir = {:?}", dir.display().to_string()),
                None => "apps_catalog_dir = \"(none)\"".to_owned(),
            },
            format!("apps_update_interval = {}", self.apps_update_interval),
            format!(
                "apps_kubernetes_namespace_prefix = {:?}",
                self.apps_kubernetes_namespace_prefix
            ),
            match &self.apps_uids {
                Some(range) => format!("apps_uids = \"{}-{}\"", range.start(), range.end()),
                None => "apps_uids = \"off\"".to_owned(),
            },
            format!(
                "apps_test_fail_step = {:?}",
                self.apps_test_fail_step.as_deref().unwrap_or("(none)")
            ),
            match &self.proxy {
                Some(proxy) => format!(
                    "proxy_listen = \"{}\"\nproxy_tls_dir = {}\nproxy_route = {} route(s)",
                    proxy.listen,
                    proxy.tls_dir.as_ref().map_or(
                        "\"(none: plain HTTP)\"".to_owned(),
                        |d| format!("{:?}", d.display().to_string())
                    ),
                    proxy.routes.len()
                ),
                None => "proxy_listen = \"(none: no edge proxy)\"".to_owned(),
            },
        ]
        .join("\n")
    }
}

fn check_log_filter(filter: String) -> Result<String, ConfigError> {
    tracing_subscriber::EnvFilter::try_new(&filter)
        .map_err(|e| err("log", format!("not a valid filter ({e}): {filter:?}")))?;
    Ok(filter)
}

fn check_database_url(url: &str) -> Result<(), ConfigError> {
    stackgate_store::Backend::from_url(url).map_err(|e| match e {
        stackgate_store::StoreError::Url(message) => err("database_url", message),
        other => err("database_url", other.to_string()),
    })?;
    Ok(())
}

fn check_issuer(raw: &str) -> Result<Url, ConfigError> {
    let url =
        Url::parse(raw.trim()).map_err(|e| err("issuer", format!("not a URL ({e}): {raw:?}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(err(
            "issuer",
            format!("must start with https:// (found {:?})", url.scheme()),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err(
            "issuer",
            "must not have a query or fragment (OpenID Connect Discovery §4.1)",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err("issuer", "must not contain credentials"));
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if url.scheme() == "http" && !loopback {
        return Err(err(
            "issuer",
            "must use https:// unless the host is localhost: sessions and tokens would cross the network in clear text",
        ));
    }
    Ok(url)
}

/// The content type a logo is served with, from its extension.
pub fn logo_content_type(path: &Path) -> Option<&'static str> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => Some("image/png"),
        Some("svg") => Some("image/svg+xml"),
        Some("jpg" | "jpeg") => Some("image/jpeg"),
        Some("webp") => Some("image/webp"),
        _ => None,
    }
}

fn check_logo(path: &str) -> Result<PathBuf, ConfigError> {
    let path = PathBuf::from(path);
    if logo_content_type(&path).is_none() {
        return Err(err(
            "organisation_logo",
            format!("{}: use a .png, .svg, .jpg or .webp file", path.display()),
        ));
    }
    let meta = std::fs::metadata(&path)
        .map_err(|e| err("organisation_logo", format!("{}: {e}", path.display())))?;
    if meta.len() > 512 * 1024 {
        return Err(err(
            "organisation_logo",
            format!("{} is larger than 512 KiB", path.display()),
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_need_no_configuration() {
        let config = Config::load(None, env(&[])).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.issuer_str(), "http://localhost:8080");
        assert_eq!(
            config.database_url,
            "sqlite://./stackgate-data/stackgate.db"
        );
        assert_eq!(config.argon2, Argon2Params::OWASP_MINIMUM);
        assert_eq!(config.apps_uids, Some(60_578..=61_183));
        let off = Config::load(None, env(&[("STACKGATE_APPS_UIDS", "off")])).unwrap();
        assert_eq!(off.apps_uids, None);
        let own = Config::load(None, env(&[("STACKGATE_APPS_UIDS", "70000-70009")])).unwrap();
        assert_eq!(own.apps_uids, Some(70_000..=70_009));
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stackgate.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\norganisation_name = \"File Org\"\n",
        )
        .unwrap();
        let config = Config::load(
            Some(&file),
            env(&[("STACKGATE_ORGANISATION_NAME", "Env Org")]),
        )
        .unwrap();
        assert_eq!(config.organisation_name, "Env Org");
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(
            config.issuer_str(),
            "http://localhost:9000",
            "issuer follows the port"
        );
        let with_path = Config::load(
            None,
            env(&[("STACKGATE_ISSUER", "https://example.org/sso/")]),
        )
        .unwrap();
        assert_eq!(with_path.issuer_str(), "https://example.org/sso");
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("STACKGATE_DATABASE_URL", "mysql://x/y")],
                "database_url: unsupported scheme \"mysql\"; use sqlite:// or postgres://",
            ),
            (
                &[("STACKGATE_LISTEN", "nowhere")],
                "listen: expected an address and port",
            ),
            (
                &[("STACKGATE_ISSUER", "http://sso.example.org")],
                "issuer: must use https://",
            ),
            (
                &[("STACKGATE_ISSUER", "https://sso.example.org/?x=1")],
                "issuer: must not have a query",
            ),
            (
                &[("STACKGATE_ARGON2_MEMORY_KIB", "1024")],
                "argon2_memory_kib: must be at least 19456",
            ),
            (
                &[("STACKGATE_PASSWORD_MIN_LENGTH", "4")],
                "password_min_length: must be between 8 and 128",
            ),
            (
                &[("STACKGATE_SESSION_LIFETIME", "soon")],
                "session_lifetime: expected a whole number",
            ),
            (
                &[("STACKGATE_LOG_FORMAT", "xml")],
                "log_format: expected \"human\" or \"json\"",
            ),
            (&[("STACKGATE_LOG", "info,[=")], "log: not a valid filter"),
            (
                &[("STACKGATE_BRAND_COLOUR", "red")],
                "brand_colour: \"red\" is not a colour like #1f5fbf",
            ),
            (
                &[("STACKGATE_ORGANISATION_LOGO", "/nonexistent/logo.png")],
                "organisation_logo: /nonexistent/logo.png: No such file",
            ),
            (
                &[("STACKGATE_ORGANISATION_LOGO", "/etc/passwd")],
                "organisation_logo: /etc/passwd: use a .png, .svg, .jpg or .webp file",
            ),
            (
                &[
                    ("STACKGATE_ISSUER", "http://127.0.0.1:8080"),
                    ("STACKGATE_MFA_POLICY", "phishing_resistant"),
                ],
                "mfa_policy: phishing_resistant needs passkeys or security keys",
            ),
            (
                &[("STACKGATE_MFA_POLICY", "strict")],
                "mfa_policy: \"strict\" is not one of",
            ),
            (
                &[("STACKGATE_SESSION_IDLE_TIMEOUT", "60")],
                "session_idle_timeout: must be between 300",
            ),
            (
                &[("STACKGATE_APPS_UIDS", "0-100")],
                "apps_uids: \"0-100\" is not FIRST-LAST with 1 <= FIRST",
            ),
            (
                &[("STACKGATE_APPS_UIDS", "200-100")],
                "apps_uids: \"200-100\" is not FIRST-LAST",
            ),
            (
                &[("STACKGATE_APPS_UIDS", "100-4294967295")],
                "apps_uids: \"100-4294967295\" is not FIRST-LAST",
            ),
            (
                &[("STACKGATE_APPS_UIDS", "on")],
                "apps_uids: \"on\" is not FIRST-LAST",
            ),
            (
                &[("STACKGATE_LSITEN", "127.0.0.1:1")],
                "STACKGATE_LSITEN: unknown setting",
            ),
            (
                &[("STACKGATE_PROXY_TLS_DIR", "/tmp")],
                "proxy_tls_dir: has no effect without proxy_listen",
            ),
            (
                &[
                    ("STACKGATE_PROXY_LISTEN", "127.0.0.1:0"),
                    ("STACKGATE_PROXY_REDIRECT_LISTEN", "127.0.0.1:0"),
                ],
                "proxy_redirect_listen: redirects to HTTPS, so it needs proxy_tls_dir",
            ),
            (
                &[
                    ("STACKGATE_PROXY_LISTEN", "127.0.0.1:0"),
                    ("STACKGATE_PROXY_UPSTREAM_MAX_CONNECTIONS", "0"),
                ],
                "proxy_upstream_max_connections: must be between 1 and 100000, found 0",
            ),
            (
                &[
                    ("STACKGATE_PROXY_LISTEN", "127.0.0.1:0"),
                    ("STACKGATE_PROXY_HEADER_USER", "bad header"),
                ],
                "proxy_header_user: \"bad header\" is not a header name",
            ),
            (
                &[
                    ("STACKGATE_PROXY_LISTEN", "127.0.0.1:0"),
                    ("STACKGATE_PROXY_COOKIE_DOMAIN", "org"),
                ],
                "proxy_cookie_domain: \"org\" is not a domain of two labels or more",
            ),
            (
                &[
                    ("STACKGATE_PROXY_LISTEN", "127.0.0.1:0"),
                    ("STACKGATE_PROXY_COOKIE_DOMAIN", "10.0.0.1"),
                ],
                "proxy_cookie_domain: \"10.0.0.1\" is an address",
            ),
            (
                &[
                    ("STACKGATE_PROXY_LISTEN", "127.0.0.1:0"),
                    ("STACKGATE_PROXY_COOKIE_DOMAIN", "apps example.org"),
                ],
                "proxy_cookie_domain: \"apps example.org\" is not a domain name",
            ),
            (
                &[
                    ("STACKGATE_PROXY_LISTEN", "127.0.0.1:0"),
                    ("STACKGATE_PROXY_ROUTE", "x"),
                ],
                "proxy_route: can be set in the config file only",
            ),
            (
                &[
                    ("STACKGATE_SESSION_IDLE_TIMEOUT", "7200"),
                    ("STACKGATE_SESSION_LIFETIME", "3600"),
                ],
                "session_idle_timeout: must not be longer",
            ),
        ];
        for (vars, expected) in cases {
            let message = Config::load(None, env(vars)).unwrap_err().to_string();
            assert!(
                message.starts_with(expected),
                "{message:?} does not start with {expected:?}"
            );
            assert!(!message.contains('\n'));
        }
    }

    #[test]
    fn file_errors_name_the_key_or_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stackgate.toml");
        std::fs::write(&file, "listen = 8080\n").unwrap();
        assert_eq!(
            Config::load(Some(&file), env(&[])).unwrap_err().to_string(),
            "listen: expected a string, found integer"
        );
        std::fs::write(&file, "colour = \"red\"\n").unwrap();
        assert!(
            Config::load(Some(&file), env(&[]))
                .unwrap_err()
                .to_string()
                .starts_with("colour: unknown key")
        );
        std::fs::write(&file, "listen = \n").unwrap();
        let message = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(
            message.starts_with("config: ") && message.contains("line 1"),
            "{message}"
        );
        let missing = Config::load(Some(&dir.path().join("nope.toml")), env(&[])).unwrap_err();
        assert_eq!(missing.key, "config");
    }

    #[test]
    fn proxy_routes_come_from_the_file_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stackgate.toml");
        let load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            Config::load(
                Some(&file),
                env(&[("STACKGATE_PROXY_LISTEN", "127.0.0.1:0")]),
            )
        };
        let config = load(
            "[[proxy_route]]\nhost = \"Wiki.Example.org\"\nupstream = \"http://10.0.0.5:3000\"\napp = \"wiki\"\ngroups = [\"staff\"]\npublic_paths = [\"/health\"]\n",
        )
        .unwrap();
        let proxy = config.proxy.unwrap();
        assert_eq!(proxy.routes.len(), 1);
        assert_eq!(proxy.routes[0].host, "wiki.example.org");
        assert_eq!(proxy.routes[0].groups, ["staff"]);
        assert_eq!(proxy.cookie_domain, None, "a cookie per host unless asked");
        let shared = load("proxy_cookie_domain = \".Apps.Example.org\"\n").unwrap();
        assert_eq!(
            shared.proxy.unwrap().cookie_domain.as_deref(),
            Some("apps.example.org")
        );
        for (text, expected) in [
            (
                "[[proxy_route]]\nhost = \"a.example\"\napp = \"a\"\n",
                "proxy_route[0].upstream: is required",
            ),
            (
                "[[proxy_route]]\nhost = \"a.example\"\nupstream = \"https://x\"\napp = \"a\"\n",
                "proxy_route[0]: upstream \"https://x\": must start with http://",
            ),
            (
                "[[proxy_route]]\nhost = \"a.example\"\nupstream = \"http://x\"\napp = \"a\"\ngroups = [\"Staff Team\"]\n",
                "proxy_route[0].groups: \"Staff Team\" is not a group name",
            ),
            (
                "[[proxy_route]]\nhost = \"a.example\"\nupstream = \"http://x\"\napp = \"a\"\ncolour = \"red\"\n",
                "proxy_route[0].colour: unknown field",
            ),
            (
                "[[proxy_route]]\nhost = \"a.example\"\nupstream = \"http://x\"\napp = \"a\"\n[[proxy_route]]\nhost = \"A.example\"\nupstream = \"http://y\"\napp = \"b\"\n",
                "proxy_route: two routes for a.example/",
            ),
        ] {
            let message = load(text).unwrap_err().to_string();
            assert!(
                message.starts_with(expected),
                "{message} (expected {expected})"
            );
        }
    }

    #[test]
    fn test_variables_are_not_settings() {
        assert!(
            Config::load(
                None,
                env(&[
                    ("STACKGATE_TEST_POSTGRES_URL", "postgres://x"),
                    ("STACKGATE_CONFIG", "x")
                ])
            )
            .is_ok()
        );
    }

    #[test]
    fn describe_hides_the_database_password() {
        let config = Config::load(
            None,
            env(&[("STACKGATE_DATABASE_URL", "postgres://sg:hunter2@db/sg")]),
        )
        .unwrap();
        assert!(!config.describe().contains("hunter2"));
        for (key, _) in KEYS {
            assert!(
                config.describe().contains(&format!("{key} = ")),
                "{key} missing from describe()"
            );
        }
    }
}
