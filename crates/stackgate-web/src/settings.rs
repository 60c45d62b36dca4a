//! What admins change at runtime over the config file: the organisation's name, logo and
//! colour, session lifetimes and the global sign-in policy.
//!
//! The config file gives the starting values; the console stores overrides (`settings` table).
//! Each process keeps the merged values in memory and reads the overrides again every few
//! seconds, so a change made on one replica reaches the others without a restart.

use crate::state::WebConfig;
use base64::{Engine, engine::general_purpose::STANDARD};
use stackgate_identity::MfaPolicy;
use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
};

/// The largest logo accepted, as for the config file's `organisation_logo`.
pub const MAX_LOGO_BYTES: usize = 512 * 1024;

/// The values in force.
#[derive(Debug, Clone)]
pub struct Settings {
    pub organisation_name: String,
    /// Content type and bytes, served at `/assets/logo`.
    pub logo: Option<Arc<(&'static str, Vec<u8>)>>,
    /// `#rrggbb`.
    pub brand_colour: Option<String>,
    /// Seconds a session may stay unused.
    pub session_idle_timeout: i64,
    /// Seconds a session lives at most.
    pub session_lifetime: i64,
    /// The global sign-in policy; groups may ask for more.
    pub mfa_policy: MfaPolicy,
}

/// The stored keys.
pub(crate) mod keys {
    pub const NAME: &str = "organisation_name";
    pub const LOGO: &str = "organisation_logo";
    pub const COLOUR: &str = "brand_colour";
    pub const IDLE: &str = "session_idle_timeout";
    pub const LIFETIME: &str = "session_lifetime";
    pub const MFA: &str = "mfa_policy";
}

/// The settings in force in this process.
#[derive(Debug)]
pub struct LiveSettings {
    current: RwLock<Arc<Settings>>,
}

impl LiveSettings {
    /// The config file's values, before any override is read.
    pub fn from_config(config: &WebConfig) -> Self {
        Self {
            current: RwLock::new(Arc::new(merge(config, &BTreeMap::new()))),
        }
    }

    pub fn get(&self) -> Arc<Settings> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the stored overrides again.
    pub async fn reload(
        &self,
        store: &stackgate_store::Store,
        config: &WebConfig,
    ) -> Result<(), stackgate_store::StoreError> {
        let merged = Arc::new(merge(config, &store.settings().await?));
        match self.current.write() {
            Ok(mut current) => *current = merged,
            Err(poisoned) => *poisoned.into_inner() = merged,
        }
        Ok(())
    }
}

/// The config file's values with the stored overrides on top. A stored value that no longer
/// checks out (written by a newer version, say) is skipped with a warning, never fatal.
pub(crate) fn merge(config: &WebConfig, stored: &BTreeMap<String, String>) -> Settings {
    let mut settings = Settings {
        organisation_name: config.organisation_name.clone(),
        logo: config.logo.clone(),
        brand_colour: config.brand_colour.clone(),
        session_idle_timeout: config.session_idle_timeout,
        session_lifetime: config.session_lifetime,
        mfa_policy: config.mfa_policy,
    };
    for (key, value) in stored {
        let applied = match key.as_str() {
            keys::NAME => check_name(value).map(|v| settings.organisation_name = v),
            keys::COLOUR => check_colour(value).map(|v| settings.brand_colour = Some(v)),
            keys::LOGO => decode_logo(value).map(|v| settings.logo = Some(Arc::new(v))),
            keys::IDLE => value
                .parse()
                .map_err(|_| "not a number".to_owned())
                .map(|v| settings.session_idle_timeout = v),
            keys::LIFETIME => value
                .parse()
                .map_err(|_| "not a number".to_owned())
                .map(|v| settings.session_lifetime = v),
            keys::MFA => MfaPolicy::parse(keys::MFA, value)
                .map_err(|e| e.to_string())
                .map(|v| settings.mfa_policy = v),
            _ => Ok(()),
        };
        if let Err(reason) = applied {
            tracing::warn!(key, %reason, "stored setting ignored");
        }
    }
    settings
}

pub(crate) fn check_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err("the organisation's name needs 1 to 100 characters".into());
    }
    Ok(name.to_owned())
}

pub(crate) fn check_colour(colour: &str) -> Result<String, String> {
    let colour = colour.trim().to_ascii_lowercase();
    let hex = colour.strip_prefix('#').unwrap_or_default();
    if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("a colour is written #rrggbb, for example #1f5fbf".into());
    }
    Ok(colour)
}

/// The content type of an image by its first bytes: PNG, JPEG, WebP or SVG.
pub(crate) fn logo_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).to_ascii_lowercase();
        let head = head.trim_start_matches('\u{feff}').trim_start();
        (head.starts_with('<') && head.contains("<svg")).then_some("image/svg+xml")
    }
}

pub(crate) fn check_logo(bytes: &[u8]) -> Result<&'static str, String> {
    if bytes.len() > MAX_LOGO_BYTES {
        return Err(format!(
            "the logo is {} KiB; at most {} KiB",
            bytes.len().div_ceil(1024),
            MAX_LOGO_BYTES / 1024
        ));
    }
    logo_type(bytes).ok_or_else(|| "the logo must be a PNG, JPEG, WebP or SVG image".into())
}

pub(crate) fn encode_logo(kind: &str, bytes: &[u8]) -> String {
    format!("{kind};{}", STANDARD.encode(bytes))
}

fn decode_logo(value: &str) -> Result<(&'static str, Vec<u8>), String> {
    let (_, data) = value.split_once(';').ok_or("no content type")?;
    let bytes = STANDARD.decode(data).map_err(|e| e.to_string())?;
    let kind = check_logo(&bytes)?;
    Ok((kind, bytes))
}

/// A change to the settings: each field given is set; `logo: Some(None)` removes the logo.
#[derive(Debug, Default)]
pub(crate) struct SettingsChange {
    pub organisation_name: Option<String>,
    pub brand_colour: Option<String>,
    pub session_idle_timeout: Option<i64>,
    pub session_lifetime: Option<i64>,
    pub mfa_policy: Option<String>,
    pub logo: Option<Option<Vec<u8>>>,
}

/// Why a change was refused: the setting, and a sentence for a person.
#[derive(Debug)]
pub(crate) struct Refused {
    pub field: &'static str,
    pub message: String,
}

fn refused(field: &'static str, message: impl Into<String>) -> Refused {
    Refused {
        field,
        message: message.into(),
    }
}

impl SettingsChange {
    /// The rows to store, checked against each other and the values in force; `webauthn` says
    /// whether passkeys can be used at all (a policy no one could meet is refused).
    pub(crate) fn rows(
        &self,
        current: &Settings,
        webauthn: bool,
    ) -> Result<Vec<(&'static str, Option<String>)>, Refused> {
        let mut rows = Vec::new();
        if let Some(name) = &self.organisation_name {
            let name = check_name(name).map_err(|m| refused(keys::NAME, m))?;
            rows.push((keys::NAME, Some(name)));
        }
        if let Some(colour) = &self.brand_colour {
            let colour = check_colour(colour).map_err(|m| refused(keys::COLOUR, m))?;
            rows.push((keys::COLOUR, Some(colour)));
        }
        let idle = self
            .session_idle_timeout
            .unwrap_or(current.session_idle_timeout);
        let lifetime = self.session_lifetime.unwrap_or(current.session_lifetime);
        // Ranges apply to what is being set; the config file may hold values the console
        // does not offer (a lifetime under an hour), which stay valid until changed here.
        if self.session_idle_timeout.is_some() && !(300..=31_536_000).contains(&idle) {
            return Err(refused(
                keys::IDLE,
                "unused sessions end after 5 minutes to 365 days",
            ));
        }
        if self.session_lifetime.is_some() && !(3600..=31_536_000).contains(&lifetime) {
            return Err(refused(
                keys::LIFETIME,
                "sessions end after 1 hour to 365 days at most",
            ));
        }
        if idle > lifetime {
            return Err(refused(
                keys::IDLE,
                "unused sessions cannot last longer than sessions do at most",
            ));
        }
        if self.session_idle_timeout.is_some() {
            rows.push((keys::IDLE, Some(idle.to_string())));
        }
        if self.session_lifetime.is_some() {
            rows.push((keys::LIFETIME, Some(lifetime.to_string())));
        }
        if let Some(policy) = &self.mfa_policy {
            let policy = MfaPolicy::parse(keys::MFA, policy).map_err(|_| {
                refused(
                    keys::MFA,
                    "what every sign-in must use: optional, required or phishing_resistant",
                )
            })?;
            if policy == MfaPolicy::PhishingResistant && !webauthn {
                return Err(refused(
                    keys::MFA,
                    "passkeys and security keys are off (the issuer is an IP address), so no one could meet that policy",
                ));
            }
            rows.push((keys::MFA, Some(policy.as_str().to_owned())));
        }
        match &self.logo {
            Some(Some(bytes)) => {
                let kind = check_logo(bytes).map_err(|m| refused(keys::LOGO, m))?;
                rows.push((keys::LOGO, Some(encode_logo(kind, bytes))));
            }
            Some(None) => rows.push((keys::LOGO, None)),
            None => {}
        }
        Ok(rows)
    }
}

/// Stores checked rows with their audit entry and puts them in force in this process at once.
pub(crate) async fn apply(
    state: &crate::state::AppState,
    actor: &stackgate_identity::Actor,
    rows: &[(&'static str, Option<String>)],
) -> Result<(), stackgate_store::StoreError> {
    let policy = rows
        .iter()
        .find(|(k, _)| *k == keys::MFA)
        .and_then(|(_, v)| v.clone());
    let entry = actor
        .entry("settings.update", stackgate_identity::Target::System)
        .with_detail(serde_json::json!({
            "keys": rows.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            "mfa_policy": policy,
        }));
    state.store.save_settings(rows, &entry).await?;
    state.settings.reload(&state.store, &state.config).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn logos_are_known_by_their_bytes() {
        assert_eq!(logo_type(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(logo_type(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(logo_type(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(
            logo_type(b"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>"),
            Some("image/svg+xml")
        );
        assert_eq!(logo_type(b"<html><script>alert(1)</script>"), None);
        assert_eq!(logo_type(b"GIF89a"), None);
        assert!(check_logo(&vec![0u8; MAX_LOGO_BYTES + 1]).is_err());
    }

    #[test]
    fn names_and_colours_are_checked() {
        assert_eq!(check_colour(" #1F5FBF ").unwrap(), "#1f5fbf");
        for bad in ["1f5fbf", "#1f5fb", "#gggggg", "red", "#1f5fbf;}"] {
            assert!(check_colour(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_name("  Example Newsroom ").unwrap(),
            "Example Newsroom"
        );
        assert!(check_name("").is_err());
        assert!(check_name(&"x".repeat(101)).is_err());
        assert!(check_name("a\nb").is_err());
    }

    #[test]
    fn a_stored_logo_comes_back() {
        let png = b"\x89PNG\r\n\x1a\nmore".to_vec();
        let (kind, bytes) = decode_logo(&encode_logo("image/png", &png)).unwrap();
        assert_eq!((kind, bytes), ("image/png", png));
        assert!(decode_logo("image/png;not base64!").is_err());
    }
}
