//! The catalog: the manifests shipped in `charts/catalog/`, checked when Stackgate starts (and
//! by a test, so a bad entry never ships).

use crate::{AppsError, Manifest};

const ENTRIES: &[(&str, &str)] = &[
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
    pub source: &'static str,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    entries: Vec<Entry>,
}

impl Catalog {
    /// The shipped catalog.
    pub fn shipped() -> Result<Self, AppsError> {
        let mut entries = Vec::with_capacity(ENTRIES.len());
        for (file, source) in ENTRIES {
            let manifest = Manifest::parse(source)
                .map_err(|e| AppsError::Refused(format!("charts/catalog/{file}.yaml: {e}")))?;
            if manifest.id() != *file {
                return Err(AppsError::Refused(format!(
                    "charts/catalog/{file}.yaml: its id is {:?}",
                    manifest.id()
                )));
            }
            entries.push(Entry { manifest, source });
        }
        Ok(Self { entries })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.manifest.id() == id)
    }
}
