//! Where a process app's files live (`<data_dir>/apps/<id>/`) and what becomes of them: the env
//! file with its OIDC settings (client secret included), its output and its pid record, which are
//! Stackgate's; and the app's own folder `data/`, its working directory and home, where it keeps
//! what it writes (kept unless an uninstall purges it, or it is empty).

use std::collections::HashSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// What of an app's directory a teardown keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leave {
    /// Uninstall with purge.
    Nothing,
    /// Uninstall: the data the app wrote stays, for a later install to find.
    Data,
    /// A failed install: the app's output stays too, so the admin can read why it failed.
    DataAndOutput,
}

/// The app's own folder in its directory.
pub(crate) const DATA: &str = "data";
/// The apps' directories, in `data_dir`.
pub(crate) const APPS: &str = "apps";

#[derive(Debug, Clone)]
pub(crate) struct AppFiles {
    apps_dir: PathBuf,
}

impl AppFiles {
    pub(crate) fn new(data_dir: &Path) -> Self {
        // Absolute: an app's folder is its working directory and its HOME, and is checked
        // for being reachable from `/`.
        let data_dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned());
        Self {
            apps_dir: data_dir.join(APPS),
        }
    }

    pub(crate) fn apps_dir(&self) -> &Path {
        &self.apps_dir
    }

    pub(crate) fn dir(&self, id: &str) -> PathBuf {
        self.apps_dir.join(id)
    }

    pub(crate) fn data_dir(&self, id: &str) -> PathBuf {
        self.dir(id).join(DATA)
    }

    pub(crate) fn env_file(&self, id: &str) -> PathBuf {
        self.dir(id).join("app.env")
    }

    pub(crate) fn log_file(&self, id: &str) -> PathBuf {
        self.dir(id).join("app.log")
    }

    pub(crate) fn pid_file(&self, id: &str) -> PathBuf {
        self.dir(id).join(crate::pid_file::PID_FILE)
    }

    /// Removes what `leave` does not keep; the directory goes once nothing is left in it.
    pub(crate) fn remove(&self, id: &str, leave: Leave) -> std::io::Result<()> {
        match leave {
            Leave::Nothing => std::fs::remove_dir_all(self.dir(id)).or_else(ignore_missing),
            Leave::Data => {
                remove_file(&self.env_file(id))?;
                self.forget_output(id)
            }
            Leave::DataAndOutput => {
                remove_file(&self.env_file(id))?;
                remove_dir_if_empty(&self.data_dir(id))?;
                remove_dir_if_empty(&self.dir(id))
            }
        }
    }

    /// Removes the app's output, and its data folder and directory when nothing else is in
    /// them.
    pub(crate) fn forget_output(&self, id: &str) -> std::io::Result<()> {
        remove_file(&self.log_file(id))?;
        remove_dir_if_empty(&self.data_dir(id))?;
        remove_dir_if_empty(&self.dir(id))
    }

    /// At start: drops the output failed installs kept, since nothing shows those installs any
    /// more. Only real directories of apps not `installed` are looked at (a symlink is not
    /// followed).
    pub(crate) fn forget_failed_outputs(&self, installed: &HashSet<String>) {
        let Ok(entries) = std::fs::read_dir(&self.apps_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(id) = entry.file_name().into_string() else {
                continue;
            };
            // DirEntry::file_type does not follow symlinks.
            if installed.contains(&id) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if let Err(e) = self.forget_output(&id) {
                tracing::warn!(app = %id, error = %e, "could not remove a failed install's output");
            }
        }
    }
}

fn remove_file(path: &Path) -> std::io::Result<()> {
    std::fs::remove_file(path).or_else(ignore_missing)
}

fn remove_dir_if_empty(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() == ErrorKind::DirectoryNotEmpty => Ok(()),
        other => other.or_else(ignore_missing),
    }
}

fn ignore_missing(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_teardown_keeps_what_it_says_and_the_start_sweep_only_failed_output() {
        let root = tempfile::tempdir().expect("temp dir");
        let files = AppFiles::new(root.path());
        let app = |id: &str, data: bool| {
            // As a launch leaves it: the app's own folder is there, empty or not.
            std::fs::create_dir_all(files.data_dir(id)).expect("dir");
            std::fs::write(files.env_file(id), "SECRET=x").expect("env");
            std::fs::write(files.log_file(id), "out").expect("log");
            if data {
                std::fs::write(files.data_dir(id).join("notes.db"), "data").expect("data");
            }
        };
        let names = |id: &str| -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(files.dir(id))
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            names
        };

        app("failed", false);
        files
            .remove("failed", Leave::DataAndOutput)
            .expect("remove");
        assert_eq!(names("failed"), ["app.log"], "an empty data folder goes");
        app("uninstalled", true);
        files.remove("uninstalled", Leave::Data).expect("remove");
        assert_eq!(names("uninstalled"), [DATA]);
        assert!(files.data_dir("uninstalled").join("notes.db").exists());
        app("purged", true);
        files.remove("purged", Leave::Nothing).expect("remove");
        assert!(!files.dir("purged").exists());
        app("bare", false);
        files.remove("bare", Leave::Data).expect("remove");
        assert!(!files.dir("bare").exists(), "an empty directory goes");

        app("running", false);
        let elsewhere = tempfile::tempdir().expect("temp dir");
        std::fs::write(elsewhere.path().join("app.log"), "not ours").expect("log");
        #[cfg(unix)]
        std::os::unix::fs::symlink(elsewhere.path(), files.dir("linked")).expect("symlink");
        std::fs::write(files.apps_dir().join("stray"), "x").expect("stray file");
        files.forget_failed_outputs(&HashSet::from(["running".to_owned()]));
        assert!(
            !files.dir("failed").exists(),
            "a failed install's output goes at start"
        );
        assert_eq!(names("uninstalled"), [DATA], "data stays");
        assert_eq!(
            names("running"),
            ["app.env", "app.log", DATA],
            "an installed app's files stay"
        );
        assert!(
            elsewhere.path().join("app.log").exists(),
            "a symlink is not followed"
        );
        assert!(files.apps_dir().join("stray").exists());
    }
}
