//! The catalog: the manifests shipped in `charts/catalog/` (checked when Stackgate starts, and by
//! a test, so a bad entry never ships), plus an optional folder of the organisation's own
//! manifests (`apps_catalog_dir`), read again whenever the catalog is used so that a new app or
//! a new version needs no restart. An app may be there in several versions.

use crate::{AppsError, Manifest, checks::version_numbers};
use std::path::Path;

const SHIPPED: &[(&str, &str)] = &[
    ("demo", include_str!("../../../charts/catalog/demo.yaml")),
    (
        "nextcloud",
        include_str!("../../../charts/catalog/nextcloud.yaml"),
    ),
    (
        "rocketchat",
        include_str!("../../../charts/catalog/rocketchat.yaml"),
    ),
    ("jitsi", include_str!("../../../charts/catalog/jitsi.yaml")),
    (
        "wordpress",
        include_str!("../../../charts/catalog/wordpress.yaml"),
    ),
    ("wekan", include_str!("../../../charts/catalog/wekan.yaml")),
];

/// One catalog entry: the parsed manifest and its source text.
#[derive(Debug, Clone)]
pub struct Entry {
    pub manifest: Manifest,
    pub source: String,
}

impl Entry {
    fn numbers(&self) -> (u64, u64, u64) {
        version_numbers(self.manifest.version()).unwrap_or_default()
    }
}

/// Which newer versions an app takes by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdatePolicy {
    None,
    /// 1.4.2 → 1.4.9, never 1.5.0.
    Patch,
    /// 1.4.2 → 1.9.0, never 2.0.0.
    Minor,
}

impl UpdatePolicy {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "none" => Some(Self::None),
            "patch" => Some(Self::Patch),
            "minor" => Some(Self::Minor),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Catalog {
    entries: Vec<Entry>,
}

impl Catalog {
    /// The shipped catalog only.
    pub fn shipped() -> Result<Self, AppsError> {
        Self::load(None)
    }

    /// The shipped catalog and the manifests (`*.yaml`) in `extra`; a problem in any file is
    /// reported with the file's name and the line.
    pub fn load(extra: Option<&Path>) -> Result<Self, AppsError> {
        let mut entries = Vec::new();
        for (file, source) in SHIPPED {
            let entry = parse(&format!("charts/catalog/{file}.yaml"), source)?;
            if entry.manifest.id() != *file {
                return Err(AppsError::Refused(format!(
                    "charts/catalog/{file}.yaml: its id is {:?}",
                    entry.manifest.id()
                )));
            }
            entries.push(entry);
        }
        if let Some(dir) = extra {
            let mut files: Vec<_> = std::fs::read_dir(dir)
                .map_err(|e| AppsError::Refused(format!("{}: {e}", dir.display())))?
                .filter_map(Result::ok)
                .map(|f| f.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            files.sort();
            for path in files {
                let source = std::fs::read_to_string(&path)
                    .map_err(|e| AppsError::Refused(format!("{}: {e}", path.display())))?;
                let entry = parse(&path.display().to_string(), &source)?;
                let same = |e: &Entry| {
                    e.manifest.id() == entry.manifest.id()
                        && e.manifest.version() == entry.manifest.version()
                };
                // The organisation's own file wins over a shipped one of the same version.
                entries.retain(|e| !same(e));
                entries.push(entry);
            }
        }
        Ok(Self { entries })
    }

    /// The newest version of each app.
    pub fn latest_entries(&self) -> Vec<&Entry> {
        let mut ids: Vec<&str> = Vec::new();
        for e in &self.entries {
            if !ids.contains(&e.manifest.id()) {
                ids.push(e.manifest.id());
            }
        }
        ids.into_iter().filter_map(|id| self.latest(id)).collect()
    }

    pub fn latest(&self, id: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .filter(|e| e.manifest.id() == id)
            .max_by_key(|e| e.numbers())
    }

    pub fn version(&self, id: &str, version: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.manifest.id() == id && e.manifest.version() == version)
    }

    /// The newest version above `current` that `policy` allows.
    pub fn update_for(&self, id: &str, current: &str, policy: UpdatePolicy) -> Option<&Entry> {
        let now = version_numbers(current)?;
        self.entries
            .iter()
            .filter(|e| e.manifest.id() == id && e.numbers() > now)
            .filter(|e| {
                let (major, minor, _) = e.numbers();
                match policy {
                    UpdatePolicy::None => false,
                    UpdatePolicy::Patch => major == now.0 && minor == now.1,
                    UpdatePolicy::Minor => major == now.0,
                }
            })
            .max_by_key(|e| e.numbers())
    }
}

fn parse(name: &str, source: &str) -> Result<Entry, AppsError> {
    let manifest = Manifest::parse(source).map_err(|e| match e {
        AppsError::Manifest(problems) => AppsError::Refused(format!(
            "{name}: {}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )),
        other => other,
    })?;
    Ok(Entry {
        manifest,
        source: source.to_owned(),
    })
}

/// Whether `candidate` is a higher version than `current`.
pub fn is_newer(candidate: &str, current: &str) -> bool {
    match (version_numbers(candidate), version_numbers(current)) {
        (Some(a), Some(b)) => a > b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(version: &str) -> String {
        format!(
            "id: notes\nname: Notes\nversion: {version}\ndescription: d\ncategory: c\n\
             deploy:\n  process:\n    command: app\naccess:\n  roles:\n    header: X-Role\n    \
             user: u\n    admin: a\n"
        )
    }

    #[test]
    fn update_policies_pick_the_newest_allowed_version() {
        let dir = tempfile::tempdir().expect("dir");
        for v in ["1.4.2", "1.4.9", "1.5.0", "2.0.0"] {
            std::fs::write(dir.path().join(format!("notes-{v}.yaml")), manifest(v)).expect("write");
        }
        let catalog = Catalog::load(Some(dir.path())).expect("catalog");
        let pick = |p| {
            catalog
                .update_for("notes", "1.4.2", p)
                .map(|e| e.manifest.version().to_owned())
        };
        assert_eq!(pick(UpdatePolicy::None), None);
        assert_eq!(pick(UpdatePolicy::Patch).as_deref(), Some("1.4.9"));
        assert_eq!(pick(UpdatePolicy::Minor).as_deref(), Some("1.5.0"));
        assert_eq!(
            catalog.latest("notes").map(|e| e.manifest.version()),
            Some("2.0.0")
        );
        assert_eq!(
            catalog
                .latest_entries()
                .iter()
                .filter(|e| e.manifest.id() == "notes")
                .count(),
            1
        );
        assert!(is_newer("1.10.0", "1.9.9"));
        assert!(!is_newer("1.4.2", "1.4.2"));
    }

    #[test]
    fn a_bad_file_in_the_folder_is_named_with_its_line() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("bad.yaml"), manifest("one")).expect("write");
        let err = Catalog::load(Some(dir.path()))
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains("bad.yaml: line 3, column 10: version"),
            "{err}"
        );
    }
}
