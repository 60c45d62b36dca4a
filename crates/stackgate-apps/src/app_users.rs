//! Who a process app runs as. Run by root, Stackgate gives each app a user id of its own from
//! `apps_uids`, with the group of the same number and no other group: the app cannot read
//! Stackgate's key file, its SQLite database or another app's files, nor signal another app's
//! processes. The id is recorded nowhere but as the owner of the app's data folder
//! (`apps/ID/data`), so it lasts across restarts and upgrades, and is free again once the folder
//! is gone and no process runs as it. Not root, Stackgate cannot change users: apps then run as
//! its own.
//!
//! Root never works inside a folder an app owns: a folder can be handed to an app only while it
//! is empty, as one made by another user may hold links (hard or symbolic) that a chown would
//! follow to files that are not the app's.

use crate::{AppsError, app_files::AppFiles};
use std::{
    collections::HashSet,
    io::ErrorKind,
    ops::RangeInclusive,
    os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt},
    path::Path,
    sync::{Mutex, PoisonError},
};

/// The ids systemd documents as unused: between those it gives users bound into containers and
/// those of `DynamicUser=` services.
pub const DEFAULT_APP_UIDS: RangeInclusive<u32> = 60_578..=61_183;

/// The user and group a process app runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppUser {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug)]
pub(crate) enum AppUsers {
    /// Apps run as Stackgate's own user.
    Shared,
    /// Each app has a user of its own from `range`.
    Own {
        range: RangeInclusive<u32>,
        /// Held while an id is chosen and given, so two installs cannot both take it.
        choosing: Mutex<()>,
    },
}

impl AppUsers {
    /// Users of their own from `range`, when there is one and Stackgate can change users.
    pub(crate) fn new(range: Option<RangeInclusive<u32>>) -> Self {
        let root = rustix::process::geteuid().is_root();
        // Not Linux: being root is taken to be enough.
        let able = match std::fs::read_to_string("/proc/self/status") {
            Ok(status) => capable(&status),
            Err(_) => true,
        } && std::fs::read_to_string("/proc/self/setgroups")
            // A user namespace may deny setgroups, which std then ignores: the app would keep
            // root's groups.
            .map_or(true, |allowed| allowed.trim() != "deny");
        match range {
            Some(range) if root && able => Self::Own {
                range,
                choosing: Mutex::new(()),
            },
            Some(_) if root => {
                tracing::warn!(
                    "Stackgate runs as root without what giving process apps users of their own takes (CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_KILL, CAP_SETGID, CAP_SETUID, and setgroups allowed): they run as its own user, which can read its key file and database"
                );
                Self::Shared
            }
            Some(_) => {
                tracing::info!(
                    "process apps run as Stackgate's own user, which can read its key file and database: only root can give them users of their own (apps_uids)"
                );
                Self::Shared
            }
            None => Self::Shared,
        }
    }

    /// Whether apps have users of their own.
    pub(crate) fn own(&self) -> bool {
        matches!(self, Self::Own { .. })
    }

    /// The mode of an app's directory (`apps/ID`, Stackgate's): with users of their own, apps
    /// pass through it to their data folder.
    pub(crate) fn app_dir_mode(&self) -> u32 {
        if self.own() { 0o711 } else { 0o700 }
    }

    /// Opens the way to the apps' data folders: `data_dir` and `apps/` become 0711 (others may
    /// pass through to a name they know, not list), after Stackgate's own files in them are made
    /// their owner's alone: every other entry of `data_dir`, and each app's settings, output and
    /// pid record. Earlier versions relied on `data_dir` being 0700 and made files 0644 in it.
    pub(crate) fn open_data_dir(&self, data_dir: &Path, files: &AppFiles) -> Result<(), AppsError> {
        if !self.own() {
            return Ok(());
        }
        std::fs::create_dir_all(data_dir).map_err(|e| at(data_dir, &e))?;
        let mine = |path: &Path| -> Result<(), AppsError> {
            // Not followed: a link's own mode means nothing, and what it points at is not ours.
            let meta = match std::fs::symlink_metadata(path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(at(path, &e)),
            };
            if meta.file_type().is_symlink() || meta.mode() & 0o077 == 0 {
                return Ok(());
            }
            let private = std::fs::Permissions::from_mode(meta.mode() & 0o700);
            std::fs::set_permissions(path, private).map_err(|e| at(path, &e))?;
            tracing::info!(path = %path.display(), "made Stackgate's file its own alone, as apps now pass through its folder");
            Ok(())
        };
        for entry in std::fs::read_dir(data_dir).map_err(|e| at(data_dir, &e))? {
            let entry = entry.map_err(|e| at(data_dir, &e))?;
            if entry.file_name() != crate::app_files::APPS {
                mine(&entry.path())?;
            }
        }
        if let Ok(apps) = std::fs::read_dir(files.apps_dir()) {
            for entry in apps.flatten() {
                let Ok(id) = entry.file_name().into_string() else {
                    continue;
                };
                for path in [
                    files.env_file(&id),
                    files.log_file(&id),
                    files.pid_file(&id),
                ] {
                    mine(&path)?;
                }
            }
        }
        pass_through(data_dir)?;
        std::fs::create_dir_all(files.apps_dir()).map_err(|e| at(files.apps_dir(), &e))?;
        pass_through(files.apps_dir())
    }

    /// The user `id`'s process runs as (`None`: Stackgate's own), with its data folder ready for
    /// it: made, or handed over when it was made while apps ran as Stackgate's user.
    pub(crate) fn prepare(&self, files: &AppFiles, id: &str) -> Result<Option<AppUser>, AppsError> {
        let data = files.data_dir(id);
        let Self::Own { range, choosing } = self else {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&data)?;
            return Ok(None);
        };
        let _choosing = choosing.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = files.dir(id);
        std::fs::create_dir_all(&dir).map_err(|e| at(&dir, &e))?;
        // The app's own files are Stackgate's (its settings, its output): it passes through.
        pass_through(&dir)?;
        let user = match std::fs::symlink_metadata(&data) {
            Ok(meta) if meta.is_dir() && range.contains(&meta.uid()) => {
                let user = AppUser {
                    uid: meta.uid(),
                    gid: meta.uid(),
                };
                if let Some(other) = owned_by(files, user.uid, id) {
                    return Err(AppsError::Process(format!(
                        "{} and the folder of {other} are both owned by uid {}: two apps must \
                         not share a user; give one of them an id no other app's folder has",
                        data.display(),
                        user.uid
                    )));
                }
                if meta.gid() != user.gid {
                    give(&data, user)?;
                }
                user
            }
            Ok(meta) if meta.is_dir() => {
                let empty = std::fs::read_dir(&data)
                    .map_err(|e| at(&data, &e))?
                    .next()
                    .is_none();
                let user = self.choose(files, range)?;
                if !empty {
                    return Err(AppsError::Process(format!(
                        "{data} holds files of another user (uid {owner}), made before apps had \
                         users of their own: check that nothing in it is a link to what is not \
                         the app's, then hand it over with `chown -R {uid}:{uid} {data}` (the \
                         next free id of apps_uids; install no other app before), or move it \
                         away",
                        data = data.display(),
                        owner = meta.uid(),
                        uid = user.uid,
                    )));
                }
                give(&data, user)?;
                user
            }
            Ok(_) => {
                return Err(AppsError::Process(format!(
                    "{} is not a folder",
                    data.display()
                )));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let user = self.choose(files, range)?;
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&data)
                    .map_err(|e| at(&data, &e))?;
                give(&data, user)?;
                user
            }
            Err(e) => return Err(at(&data, &e)),
        };
        reachable(&data, user)?;
        Ok(Some(user))
    }

    /// Ends every process still running as `id`'s user once its own are stopped: a daemon that
    /// left the app's process group would otherwise outlive an uninstall. Returns how many.
    pub(crate) async fn end_strays(&self, files: &AppFiles, id: &str) -> usize {
        let Self::Own { range, .. } = self else {
            return 0;
        };
        let Ok(meta) = std::fs::symlink_metadata(files.data_dir(id)) else {
            return 0;
        };
        if !meta.is_dir() || !range.contains(&meta.uid()) {
            return 0;
        }
        let uid = meta.uid();
        let mut ended = HashSet::new();
        // One may fork while they are looked for, and a killed one is listed until it has
        // exited: look again until none is left, for two seconds at most.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let strays = processes_of(uid);
            if strays.is_empty() || tokio::time::Instant::now() >= deadline {
                break;
            }
            for pid in strays {
                if !ended.contains(&pid) && end_if_still(pid, uid) {
                    ended.insert(pid);
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        ended.len()
    }

    /// The first id of `range` that no app's data folder has, no process runs as (an app's
    /// daemon may outlive its uninstall), and no user or group of this machine's files names.
    fn choose(&self, files: &AppFiles, range: &RangeInclusive<u32>) -> Result<AppUser, AppsError> {
        let mut taken = named_ids(Path::new("/etc/passwd"));
        taken.extend(named_ids(Path::new("/etc/group")));
        taken.extend(running_uids());
        if let Ok(entries) = std::fs::read_dir(files.apps_dir()) {
            for entry in entries.flatten() {
                if let Ok(meta) =
                    std::fs::symlink_metadata(entry.path().join(crate::app_files::DATA))
                {
                    taken.insert(meta.uid());
                }
            }
        }
        first_free(range, &taken)
            .map(|id| AppUser { uid: id, gid: id })
            .ok_or_else(|| {
                AppsError::Process(format!(
                    "every user id in apps_uids ({}-{}) is taken: widen the range",
                    range.start(),
                    range.end()
                ))
            })
    }
}

/// Whether a process whose `/proc/PID/status` is `status` has what giving apps users of their
/// own takes: to give a folder away (CAP_CHOWN), to reach into and purge one (CAP_DAC_OVERRIDE),
/// to make private the files an earlier Stackgate user made (CAP_FOWNER), to end what runs as
/// another user (CAP_KILL), and to change user and groups (CAP_SETGID, CAP_SETUID). A container
/// may run as root without them.
fn capable(status: &str) -> bool {
    const NEEDED: u64 = 1 << 0 | 1 << 1 | 1 << 3 | 1 << 5 | 1 << 6 | 1 << 7;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & NEEDED == NEEDED)
}

/// Another app whose data folder is owned by `uid`.
fn owned_by(files: &AppFiles, uid: u32, except: &str) -> Option<String> {
    std::fs::read_dir(files.apps_dir())
        .ok()?
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|id| id != except)
        .find(|id| {
            std::fs::symlink_metadata(files.data_dir(id))
                .is_ok_and(|m| m.is_dir() && m.uid() == uid)
        })
}

fn first_free(range: &RangeInclusive<u32>, taken: &HashSet<u32>) -> Option<u32> {
    range.clone().find(|id| !taken.contains(id))
}

/// The ids (third field) of a passwd or group file.
fn named_ids(file: &Path) -> HashSet<u32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(':').nth(2)?.parse().ok())
        .collect()
}

/// Every live process on the machine with its user ids (real, effective, saved, file system),
/// from `/proc` (Linux; elsewhere none). A zombie has ended: only its parent's reaping is left.
fn processes() -> Vec<(u32, Vec<u32>)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            if status_field(&status, "State:")?.starts_with('Z') {
                return None;
            }
            Some((pid, status_ids(&status, "Uid:")?))
        })
        .collect()
}

fn running_uids() -> HashSet<u32> {
    processes().into_iter().flat_map(|(_, uids)| uids).collect()
}

/// Kills `pid` if it still runs as `uid`: the process is held by a pidfd before its user is
/// read again, so a number reused by another process since it was listed is never signalled.
fn end_if_still(pid: u32, uid: u32) -> bool {
    use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};
    let Some(held) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    let Ok(pidfd) = pidfd_open(held, PidfdFlags::empty()) else {
        return false;
    };
    let still = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .is_ok_and(|status| status_ids(&status, "Uid:").is_some_and(|ids| ids.contains(&uid)));
    still && pidfd_send_signal(&pidfd, Signal::KILL).is_ok()
}

/// The processes running as `uid`.
fn processes_of(uid: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|(_, uids)| uids.contains(&uid))
        .map(|(pid, _)| pid)
        .collect()
}

/// The supplementary groups a process has (Linux), to prove an app was left none.
pub(crate) fn supplementary_groups(pid: u32) -> Option<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_ids(&status, "Groups:")
}

/// The value of the line `name` (with its colon) of a `/proc/PID/status`, without its padding.
fn status_field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(str::trim_start)
}

/// The ids on the line `name` of a `/proc/PID/status`; `None` when one is not a number.
fn status_ids(status: &str, name: &str) -> Option<Vec<u32>> {
    status_field(status, name)?
        .split_whitespace()
        .map(|id| id.parse().ok())
        .collect()
}

/// An I/O error with the path it happened at.
fn at(path: &Path, e: &std::io::Error) -> AppsError {
    AppsError::Process(format!("{}: {e}", path.display()))
}

/// 0711: others may pass through to what they are allowed, not list.
fn pass_through(dir: &Path) -> Result<(), AppsError> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).map_err(|e| at(dir, &e))
}

/// Gives the folder itself (never what is in it) to `user`.
fn give(dir: &Path, user: AppUser) -> Result<(), AppsError> {
    std::os::unix::fs::lchown(dir, Some(user.uid), Some(user.gid)).map_err(|e| at(dir, &e))
}

/// Whether `user` can get to `data`: every folder above it must let others through. A data
/// folder under `/root` cannot be reached by anyone else, and the app would fail to start with
/// less to say why.
fn reachable(data: &Path, user: AppUser) -> Result<(), AppsError> {
    for above in data.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(above) else {
            continue;
        };
        let bits = if meta.uid() == user.uid {
            0o100
        } else if meta.gid() == user.gid {
            0o010
        } else {
            0o001
        };
        if meta.mode() & bits == 0 {
            return Err(AppsError::Process(format!(
                "the app's user (uid {uid}) cannot reach {data}: {above} does not let other users \
                 through (chmod o+x {above}, or put data_dir elsewhere); or set apps_uids = \"off\" \
                 to run apps as Stackgate's own user",
                uid = user.uid,
                data = data.display(),
                above = above.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{Launch, ProcessDriver, find_program};

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).expect("meta").mode() & 0o777
    }

    fn owner(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).expect("meta").uid()
    }

    fn launch(files: &AppFiles, id: &str, user: AppUser, script: &str) -> Launch {
        Launch {
            program: find_program("sh", None).expect("sh"),
            args: vec!["-c".into(), script.into()],
            env: Vec::new(),
            log: files.log_file(id),
            pid_file: files.pid_file(id),
            dir: files.data_dir(id),
            user: Some(user),
        }
    }

    #[tokio::test]
    async fn an_app_of_its_own_reaches_nothing_of_stackgates_or_another_apps() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: only root can give apps users of their own (CI runs as root)");
            return;
        }
        let root = tempfile::tempdir().expect("dir");
        let data_dir = root.path();
        std::fs::write(data_dir.join("master.key"), "key").expect("key");
        std::fs::set_permissions(
            data_dir.join("master.key"),
            PermissionsExt::from_mode(0o600),
        )
        .expect("chmod");
        // As an earlier version left them: readable by all, where only root could get to them.
        std::fs::write(data_dir.join("stackgate.db"), "db").expect("db");
        std::fs::set_permissions(
            data_dir.join("stackgate.db"),
            PermissionsExt::from_mode(0o644),
        )
        .expect("chmod");
        let files = AppFiles::new(data_dir);
        std::fs::create_dir_all(files.dir("b")).expect("b's dir");
        std::fs::write(files.log_file("b"), "b's output").expect("b's log");
        std::fs::set_permissions(files.log_file("b"), PermissionsExt::from_mode(0o644))
            .expect("chmod");
        let users = AppUsers::new(Some(DEFAULT_APP_UIDS));
        users.open_data_dir(data_dir, &files).expect("open");
        assert_eq!(mode(data_dir), 0o711);
        assert_eq!(mode(files.apps_dir()), 0o711);
        assert_eq!(mode(&data_dir.join("stackgate.db")), 0o600, "tightened");
        assert_eq!(mode(&files.log_file("b")), 0o600, "tightened");
        assert_eq!(mode(&data_dir.join("master.key")), 0o600);

        let mut given = Vec::new();
        for id in ["a", "b"] {
            // As the install's secret step leaves it.
            std::fs::create_dir_all(files.dir(id)).expect("dir");
            crate::process::write_env_file(&files.env_file(id), &[("SECRET".into(), "s".into())])
                .expect("env");
            let user = users.prepare(&files, id).expect("prepare").expect("a user");
            assert!(DEFAULT_APP_UIDS.contains(&user.uid), "{user:?}");
            assert_eq!(user.gid, user.uid);
            assert_eq!(owner(&files.data_dir(id)), user.uid);
            assert_eq!(mode(&files.data_dir(id)), 0o700);
            assert_eq!(
                owner(&files.dir(id)),
                0,
                "the app's settings stay Stackgate's"
            );
            given.push(user);
        }
        assert_ne!(given[0], given[1], "each app has a user of its own");
        assert_eq!(
            users.prepare(&files, "a").expect("again"),
            Some(given[0]),
            "an app keeps its user: its folder records it"
        );
        std::fs::write(files.data_dir("b").join("notes"), "b's").expect("b's data");

        let driver = ProcessDriver::default();
        driver
            .start("b", &launch(&files, "b", given[1], "exec sleep 60"), None)
            .expect("b starts");
        let b_pid = driver.state("b").and_then(|s| s.pid).expect("b's pid");
        let script = r#"id -u; id -g; id -G; pwd; echo "$HOME"
            for f in ../../../master.key ../../../stackgate.db ../app.env ../../b/data/notes \
                     ../../b/app.log; do
                cat "$f" >/dev/null 2>&1 && echo "read $f" || echo "refused $f"
            done
            ls ../../.. >/dev/null 2>&1 && echo "listed data_dir" || echo "cannot list data_dir"
            kill -0 "$B_PID" 2>/dev/null && echo "signalled b" || echo "cannot signal b"
            touch ../planted 2>/dev/null && echo planted || echo "cannot plant"
            echo mine > made && echo made"#;
        let mut a = launch(&files, "a", given[0], script);
        a.env.push(("B_PID".into(), b_pid.to_string()));
        driver.start("a", &a, None).expect("a starts");
        driver.ended("a").await;
        driver.stop("a").await;
        assert_eq!(
            mode(&files.log_file("a")),
            0o600,
            "the output is Stackgate's alone"
        );
        let output = std::fs::read_to_string(files.log_file("a")).expect("output");
        let uid = given[0].uid;
        let data = std::fs::canonicalize(files.data_dir("a")).expect("path");
        let data = data.display();
        let expected = format!(
            "{uid}\n{uid}\n{uid}\n{data}\n{data}\nrefused ../../../master.key\n\
             refused ../../../stackgate.db\nrefused ../app.env\nrefused ../../b/data/notes\n\
             refused ../../b/app.log\ncannot list data_dir\ncannot signal b\ncannot plant\nmade\n"
        );
        assert_eq!(output, expected);
        assert_eq!(owner(&files.data_dir("a").join("made")), uid);

        // An app's process can outlive its folder (a daemon that left its group): its id is
        // not given again while it runs.
        std::fs::remove_dir_all(files.data_dir("b")).expect("b's folder gone");
        std::fs::create_dir_all(files.dir("c")).expect("c's dir");
        let c = users
            .prepare(&files, "c")
            .expect("prepare")
            .expect("a user");
        assert!(!given.contains(&c), "{c:?} is in use");
        driver.stop("b").await;

        // A daemon that left the app's process group is ended with the app.
        std::fs::create_dir_all(files.dir("g")).expect("g's dir");
        let g = users
            .prepare(&files, "g")
            .expect("prepare")
            .expect("a user");
        let daemon = "setsid sleep 60 </dev/null >/dev/null 2>&1 &";
        driver
            .start("g", &launch(&files, "g", g, daemon), None)
            .expect("g starts");
        driver.ended("g").await;
        // `setsid` leaves the group before it becomes `sleep`.
        let sleeping = || {
            processes_of(g.uid).iter().any(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() == "sleep")
            })
        };
        for _ in 0..250 {
            if sleeping() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        driver.stop("g").await;
        assert_eq!(
            processes_of(g.uid).len(),
            1,
            "the daemon outlives its group"
        );
        assert_eq!(users.end_strays(&files, "g").await, 1);
        assert!(processes_of(g.uid).is_empty(), "the daemon is ended");

        // A folder made while apps ran as Stackgate's user is handed over only while empty:
        // what another user put in it may be a link to what is not the app's.
        std::fs::create_dir_all(files.data_dir("d")).expect("d");
        let d = users
            .prepare(&files, "d")
            .expect("prepare")
            .expect("a user");
        assert_eq!(owner(&files.data_dir("d")), d.uid);
        let outside = root.path().join("outside");
        std::fs::write(&outside, "root's").expect("outside");
        std::fs::create_dir_all(files.data_dir("e")).expect("e");
        std::fs::hard_link(&outside, files.data_dir("e").join("link")).expect("link");
        let err = users.prepare(&files, "e").expect_err("refused");
        assert!(
            err.to_string()
                .contains("holds files of another user (uid 0)"),
            "{err}"
        );
        assert_eq!(owner(&outside), 0, "a link is not followed");
        assert_eq!(owner(&files.data_dir("e")), 0);

        // Two apps never share a user, even when an admin's chown would have them.
        std::fs::create_dir_all(files.data_dir("h")).expect("h");
        give(&files.data_dir("h"), given[0]).expect("chown");
        let err = users.prepare(&files, "h").expect_err("shared");
        assert!(
            err.to_string()
                .contains(&format!("both owned by uid {}", given[0].uid)),
            "{err}"
        );

        // A data folder the app's user cannot get to is refused with the reason.
        let closed = tempfile::tempdir().expect("dir");
        std::fs::set_permissions(closed.path(), PermissionsExt::from_mode(0o700)).expect("chmod");
        let inner = closed.path().join("data");
        let files = AppFiles::new(&inner);
        users.open_data_dir(&inner, &files).expect("open");
        let err = users.prepare(&files, "f").expect_err("unreachable");
        assert!(
            err.to_string().contains(&format!(
                "{} does not let other users through",
                closed.path().display()
            )),
            "{err}"
        );
    }

    #[test]
    fn users_of_their_own_need_roots_capabilities() {
        let status = |caps: &str| format!("Name:\tstackgate\nCapInh:\t0\nCapEff:\t{caps}\n");
        // Docker's default set has them all; without CAP_SETUID, or with none, apps share.
        assert!(capable(&status("00000000a80425fb")));
        assert!(capable(&status("000001ffffffffff")));
        assert!(!capable(&status("00000000a804257b")));
        assert!(!capable(&status("0000000000000000")));
        assert!(!capable("Name:\tno capabilities line\n"));
    }

    #[test]
    fn ids_are_taken_in_order_skipping_those_in_use() {
        let taken: HashSet<u32> = [10, 11, 13].into();
        assert_eq!(first_free(&(10..=13), &taken), Some(12));
        assert_eq!(first_free(&(10..=11), &taken), None);
        let dir = tempfile::tempdir().expect("dir");
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            "root:x:0:0:root:/root:/bin/sh\nodd line\napp:x:60578:60578::/:/bin/false\n",
        )
        .expect("write");
        assert_eq!(named_ids(&passwd), [0, 60_578].into());
    }
}
